//! The quality dashboard in a real browser (issue 10, items 4 to 6): `lrt serve` on a database of
//! its own, behind a stand-in for the hospital's identity-aware proxy (an ES384 signer whose JWK
//! Set a real local HTTP server publishes; the test adds its signed assertion header to every
//! request, as Google IAP or Pomerium would), seeded by real CDS Hooks calls (the MIMIC-IV demo
//! requests and synthetic patients of which the shadow rule set judges differently), feedback,
//! pages delivered to a real webhook receiver and one acknowledged from the dashboard's session.
//!
//! Then headless Debian Chromium, driven by playwright-core (`tests/browser/dashboard.mjs`),
//! opens `/dashboard`, compares the figures shown with the API's JSON, follows a shadow
//! disagreement and a card's "Open this LRT evaluation" link to the evaluation view, checks what
//! it shows, and saves screenshots to `{target}/screenshots/`. `make tools` installs Chromium
//! and the npm package.
//!
//! Then, on the same service, the silent-mode validation view (`tests/browser/validation.mjs`):
//! adjudication files written here from the stored evaluations (a mix of agreeing and
//! disagreeing judgements, one row before any call of its patient, a one-row file whose
//! specificity is undefined, and a file with a bad time on line 3), each also posted to
//! `/api/v1/quality/validation`; the script uploads them through the page's form and compares
//! every figure shown with the API's answer.
//!
//! The sign-in itself is checked here too: no assertion 401, an assertion of another key or
//! audience 401, a person without the quality group 403, a change without the CSRF header 403.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lrt_auth::{AuthConfig, TrustedIssuer};
use lrt_e2e::cds_client::{CdsClient, JwksServer};
use lrt_e2e::pager::{PagerReceiver, eventually};
use lrt_e2e::service::TestApp;
use lrt_e2e::synthetic::{self, BORDERLINE, ELIGIBLE, STABLE};
use lrt_engine::testing::repo_root;
use lrt_server::service::config::EvaluationTime;
use lrt_server::service::dashboard::config::{AccessConfig, ProxyConfig};
use lrt_server::service::paging::WebhookConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PV: &str = "/cds-services/lrt-patient-view";
const SECRET: &str = "test-only-webhook-secret";
const IAP_HEADER: &str = "x-goog-iap-jwt-assertion";
const IAP_ISS: &str = "https://cloud.google.com/iap";
const IAP_AUD: &str = "/projects/4242/global/backendServices/1717";

/// The stand-in proxy: signs assertions for people.
struct Proxy {
    signer: CdsClient,
    jwks: JwksServer,
}

impl Proxy {
    async fn start() -> Proxy {
        let signer = CdsClient::new(IAP_ISS);
        let jwks = JwksServer::start(signer.jwks()).await;
        Proxy { signer, jwks }
    }

    /// An assertion for `email` in `groups`, valid 10 minutes, with `aud`.
    fn assertion_for(&self, email: &str, groups: &[&str], aud: &str) -> String {
        let mut claims = self.signer.claims(aud);
        claims["sub"] = json!(format!("accounts.google.com:{email}"));
        claims["email"] = json!(email);
        claims["groups"] = json!(groups);
        claims["exp"] = json!(claims["iat"].as_i64().expect("iat") + 600);
        self.signer.sign(&self.signer.header(), &claims)
    }

    fn quality_lead(&self) -> String {
        self.assertion_for("quality.lead@hospital.example", &["lrt-quality"], IAP_AUD)
    }
}

struct Setup {
    app: TestApp,
    ehr: CdsClient,
    _ehr_jwks: JwksServer,
    proxy: Proxy,
    receiver: PagerReceiver,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    lrt_fhir::client::install_crypto_provider();
    let ehr = CdsClient::new("https://ehr.test.example");
    let ehr_jwks = JwksServer::start(ehr.jwks()).await;
    let proxy = Proxy::start().await;
    let receiver = PagerReceiver::start(SECRET).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let secret = dir.path().join("webhook");
    std::fs::write(&secret, SECRET).expect("the secret file");
    let mut issuer = TrustedIssuer::new(ehr.iss.clone());
    issuer.jwks_url = Some(ehr_jwks.url.parse().expect("a JWKS URL"));
    let mut auth = AuthConfig::new(vec![issuer]);
    auth.allow_insecure_loopback_http = true;
    let (url, proxy_jwks) = (receiver.url.clone(), proxy.jwks.url.clone());
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.evaluation_time = EvaluationTime::NewestBloodGas;
        c.paging.webhook = Some(WebhookConfig {
            url,
            secret_file: Some(secret),
            secret_env: None,
            timeout_ms: 2_000,
        });
        c.paging.poll_interval_ms = 50;
        c.dashboard.proxy = Some(ProxyConfig {
            header: "X-Goog-IAP-JWT-Assertion".into(),
            issuer: IAP_ISS.into(),
            audience: IAP_AUD.into(),
            jwks_url: Some(proxy_jwks.parse().expect("a JWKS URL")),
            jwks_file: None,
            algorithms: None,
        });
        c.dashboard.access = AccessConfig {
            all_tenants_claim: Some("groups".into()),
            all_tenants_values: vec!["lrt-quality".into()],
            tenant_claim: None,
            tenant_issuer: None,
        };
    })
    .await;
    Setup {
        app,
        ehr,
        _ehr_jwks: ehr_jwks,
        proxy,
        receiver,
        _dir: dir,
    }
}

impl Setup {
    /// A CDS Hooks POST as the EHR.
    async fn post_as_ehr(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let res = self
            .app
            .http
            .post(self.app.url(path))
            .bearer_auth(self.ehr.token(&self.app.url(path)))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the service answers");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A request through the "proxy": the assertion header, and `csrf` when given.
    async fn as_person(
        &self,
        method: reqwest::Method,
        path: &str,
        assertion: Option<&str>,
        csrf: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.app.http.request(method, self.app.url(path));
        if let Some(a) = assertion {
            req = req.header(IAP_HEADER, a);
        }
        if let Some(c) = csrf {
            req = req.header("x-lrt-csrf", c);
        }
        let res = req.send().await.expect("the service answers");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn hook(&self, request: &Value) -> Value {
        let (status, body) = self.post_as_ehr(PV, request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["cards"].clone()
    }

    async fn feedback(&self, card: &Value, outcome: &str, reason: Option<Value>) {
        let mut item = json!({"card": card["uuid"], "outcome": outcome,
                              "outcomeTimestamp": "2026-12-06T10:00:00Z"});
        if outcome == "accepted" {
            item["acceptedSuggestions"] = json!([{"id": card["suggestions"][0]["uuid"]}]);
        }
        if let Some(r) = reason {
            item["overrideReason"] = r;
        }
        let (status, body) = self
            .post_as_ehr(&format!("{PV}/feedback"), &json!({"feedback": [item]}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// An adjudication CSV posted to the validation API as the dashboard's session would.
    async fn validate_as(&self, assertion: &str, window: &str, csv: &str) -> (StatusCode, Value) {
        let res = self
            .app
            .http
            .post(
                self.app
                    .url(&format!("/api/v1/quality/validation?window={window}")),
            )
            .header(IAP_HEADER, assertion)
            .header("x-lrt-csrf", "proxy")
            .header("content-type", "text/csv")
            .body(csv.to_string())
            .send()
            .await
            .expect("the service answers");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

/// A patient's stored active calls: the first and last time, and the last call's category and
/// whether it had a consult trigger.
#[derive(sqlx::FromRow)]
struct StoredCalls {
    patient_id: String,
    first: chrono::DateTime<chrono::Utc>,
    last: chrono::DateTime<chrono::Utc>,
    category: Option<String>,
    triggers: bool,
}

/// The adjudication files of the validation view, derived from what the seeding stored.
struct AdjudicationFiles {
    /// Every patient: one adjudicated an hour before its first call (not evaluated); the others
    /// one minute to a few hours after their last call, in turn agreeing with it, disagreeing on
    /// the ECMO screen and the consult, and agreeing on the category but not on the consult.
    mixed: String,
    /// One patient whose last call screens positive, adjudicated as the system called it: no
    /// adjudicated negative, so specificity and NPV are undefined.
    one_positive: String,
    /// A bad time on line 3.
    bad: String,
}

async fn adjudication_files(pool: &sqlx::PgPool) -> AdjudicationFiles {
    let calls: Vec<StoredCalls> = sqlx::query_as(
        "SELECT patient_id, min(created_at) AS first, max(created_at) AS last, \
           (array_agg(ecmo_category ORDER BY created_at DESC, id DESC))[1] AS category, \
           (array_agg(CASE WHEN jsonb_typeof(assessment->'consult_triggers') = 'array' \
              THEN jsonb_array_length(assessment->'consult_triggers') > 0 ELSE false END \
              ORDER BY created_at DESC, id DESC))[1] AS triggers \
         FROM evaluation WHERE role = 'active' GROUP BY patient_id ORDER BY patient_id",
    )
    .fetch_all(pool)
    .await
    .expect("the stored calls");
    let calls: Vec<StoredCalls> = calls
        .into_iter()
        .filter(|c| {
            (1..=64).contains(&c.patient_id.len())
                && c.patient_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        })
        .collect();
    assert!(calls.len() >= 4, "too few patients stored to validate");
    let time =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let screens_positive =
        |c: &StoredCalls| matches!(c.category.as_deref(), Some("eligible" | "borderline"));
    let category = |c: &StoredCalls| c.category.clone().unwrap_or_else(|| "not_indicated".into());
    let header = "patient,time,category,consult_warranted,note\n";
    let mut mixed = String::from(header);
    // The patients whose last call screens positive first, then the others; in each group, in
    // turn: agreeing, disagreeing on both, agreeing on the category but not on the consult.
    let (positives, negatives): (Vec<&StoredCalls>, Vec<&StoredCalls>) =
        calls.iter().partition(|c| screens_positive(c));
    for (group, calls) in [positives, negatives].iter().enumerate() {
        for (j, c) in calls.iter().enumerate() {
            // Later and later after the last call (within the 12 h window), so that the lead
            // times differ; whole seconds, at least a minute after.
            let after = time(
                c.last
                    + chrono::Duration::seconds(61)
                    + chrono::Duration::minutes(50 * (j % 8) as i64),
            );
            let (at, adjudicated, warranted, note) = match j % 3 {
                0 if group == 1 && j == 0 => (
                    time(c.first - chrono::Duration::hours(1)),
                    "eligible".to_string(),
                    true,
                    "before any call",
                ),
                0 => (after, category(c), c.triggers, "agrees"),
                1 => (
                    after,
                    if screens_positive(c) {
                        "not_indicated"
                    } else {
                        "eligible"
                    }
                    .to_string(),
                    !c.triggers,
                    "disagrees",
                ),
                _ => (after, category(c), !c.triggers, "consult disagrees"),
            };
            mixed.push_str(&format!(
                "{},{at},{adjudicated},{warranted},{note}\n",
                c.patient_id
            ));
        }
    }
    let positive = calls
        .iter()
        .find(|c| screens_positive(c))
        .expect("a patient whose last call screens positive");
    let one_positive = format!(
        "{header}{},{},{},{},\n",
        positive.patient_id,
        time(positive.last + chrono::Duration::seconds(61)),
        category(positive),
        positive.triggers
    );
    let bad = format!(
        "{header}{},{},eligible,true,\n{},yesterday,eligible,true,\n",
        calls[0].patient_id,
        time(calls[0].last),
        calls[1].patient_id
    );
    AdjudicationFiles {
        mixed,
        one_positive,
        bad,
    }
}

fn patient(tag: &str) -> String {
    format!(
        "dash-{tag}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Where the screenshots go: `{target}/screenshots/`.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .join("screenshots")
}

fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_api_figures_in_chromium() {
    let chromium = chromium_path();
    let script = repo_root().join("tests/browser/dashboard.mjs");
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: run `make tools` (apt-get install chromium)"
    );
    assert!(
        repo_root()
            .join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is missing: run `make tools` (npm ci in tests/browser)"
    );
    let s = setup().await;

    // --- Seed: every MIMIC-IV demo request, and synthetic patients. --------------------
    for request in lrt_e2e::hook_requests() {
        s.hook(&request.json).await;
    }
    let eligible = s
        .hook(&synthetic::patient_view(&patient("eligible"), ELIGIBLE))
        .await;
    let borderline = s
        .hook(&synthetic::patient_view(&patient("borderline"), BORDERLINE))
        .await;
    s.hook(&synthetic::patient_view(&patient("stable"), STABLE))
        .await;
    // More screen-positive patients, so that the validation view has true positives enough for
    // the lead time's quartiles.
    for (i, gases) in [ELIGIBLE, BORDERLINE, ELIGIBLE, BORDERLINE]
        .iter()
        .enumerate()
    {
        s.hook(&synthetic::patient_view(
            &patient(&format!("positive{i}")),
            gases,
        ))
        .await;
    }
    // Without the ventilation Procedure: 0.2.0 (active) screens only ventilated patients, 0.1.0
    // (shadow) does not, so these calls disagree.
    for (i, gases) in [ELIGIBLE, BORDERLINE].iter().enumerate() {
        let mut request = synthetic::patient_view(&patient(&format!("unventilated{i}")), gases);
        request["prefetch"]["Procedure"] = Value::Null;
        s.hook(&request).await;
    }
    assert!(
        !eligible.as_array().expect("cards").is_empty(),
        "{eligible}"
    );
    s.feedback(&eligible[0], "accepted", None).await;
    s.feedback(
        &borderline[0],
        "overridden",
        Some(
            json!({"reason": {"system": "urn:lrt:override-reason", "code": "goals-of-care"},
                    "userComment": "palliative pathway"}),
        ),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            !s.receiver.received().is_empty()
        })
        .await,
        "no page was delivered"
    );

    // --- Sign-in through the proxy. -------------------------------------------------------
    let lead = s.proxy.quality_lead();
    let alerts = "/api/v1/quality/alerts";
    let (status, _) = s.as_person(reqwest::Method::GET, alerts, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no assertion");
    let forged = {
        let other = Proxy::start().await;
        other.quality_lead()
    };
    let (status, _) = s
        .as_person(reqwest::Method::GET, alerts, Some(&forged), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another key");
    let elsewhere =
        s.proxy
            .assertion_for("a@hospital.example", &["lrt-quality"], "/projects/1/other");
    let (status, _) = s
        .as_person(reqwest::Method::GET, alerts, Some(&elsewhere), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another audience");
    let nurse = s
        .proxy
        .assertion_for("nurse@hospital.example", &["staff"], IAP_AUD);
    let (status, _) = s
        .as_person(reqwest::Method::GET, alerts, Some(&nurse), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no quality group, no tenant");
    let (status, who) = s
        .as_person(
            reqwest::Method::GET,
            "/dashboard/session",
            Some(&lead),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{who}");
    assert_eq!(who["name"], "quality.lead@hospital.example");
    assert_eq!(who["scope"], "all tenants");

    // Acknowledge a page from the dashboard's session: the CSRF header is required.
    let (status, pages) = s
        .as_person(reqwest::Method::GET, "/api/v1/pages", Some(&lead), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{pages}");
    let page_id = pages["pages"][0]["id"]
        .as_str()
        .expect("a page")
        .to_string();
    let ack = format!("/api/v1/pages/{page_id}/acknowledge");
    let (status, _) = s
        .as_person(reqwest::Method::POST, &ack, Some(&lead), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a change without X-LRT-CSRF");
    let (status, page) = s
        .as_person(reqwest::Method::POST, &ack, Some(&lead), Some("proxy"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["acknowledged_by"], "quality.lead@hospital.example");

    // --- The card's link opens the evaluation in the dashboard. ----------------------------
    let link = eligible[0]["links"][0]["url"]
        .as_str()
        .expect("a link")
        .to_string();
    let evaluation = eligible[0]["extension"]["org.lrt-cds"]["evaluationId"]
        .as_str()
        .expect("an evaluation id");
    assert_eq!(
        link,
        s.app.url(&format!("/dashboard/evaluations/{evaluation}"))
    );
    let (status, ev) = s
        .as_person(
            reqwest::Method::GET,
            &format!("/api/v1/evaluations/{evaluation}"),
            Some(&lead),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ev}");
    assert_eq!(
        ev["feedback"][0]["outcome"], "accepted",
        "{}",
        ev["feedback"]
    );
    assert!(ev["page"]["state"].is_string(), "{}", ev["page"]);

    // --- Silent-mode validation: the adjudication files and the API's answers. ---------------
    let files = adjudication_files(&s.app.pool).await;
    let window = "12h";
    let (status, mixed) = s.validate_as(&lead, window, &files.mixed).await;
    assert_eq!(status, StatusCode::OK, "{mixed}");
    // The files must exercise what the page shows, or the browser's comparison proves little.
    assert_eq!(mixed["not_evaluated"]["count"], 1, "{mixed}");
    assert!(
        mixed["screen"]["lead_time_hours"]["q1"].is_number(),
        "fewer than 4 timed true positives: {}",
        mixed["screen"]
    );
    let discordant_linked = mixed["rows"].as_array().expect("rows").iter().any(|r| {
        ["fp", "fn"].contains(&r["screen"].as_str().unwrap_or(""))
            && r["system"]["evaluation_id"].is_string()
    });
    assert!(
        discordant_linked,
        "no discordant row with an evaluation: {mixed}"
    );
    let (status, one) = s.validate_as(&lead, window, &files.one_positive).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert!(one["screen"]["specificity"]["value"].is_null(), "{one}");
    let (status, refused) = s.validate_as(&lead, window, &files.bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let refusal = refused["issue"][0]["diagnostics"]
        .as_str()
        .expect("a diagnostic")
        .to_string();
    assert!(refusal.contains("line 3"), "{refusal}");
    let validation_dir = tempfile::tempdir().expect("a temporary directory");
    let write = |name: &str, text: &str| {
        let path = validation_dir.path().join(name);
        std::fs::write(&path, text).expect("a file");
        path
    };
    let validation_env: [(&str, std::ffi::OsString); 7] = [
        ("LRT_VALIDATION_WINDOW", window.into()),
        (
            "LRT_VALIDATION_CSV",
            write("adjudications.csv", &files.mixed).into(),
        ),
        (
            "LRT_VALIDATION_EXPECTED",
            write("expected.json", &mixed.to_string()).into(),
        ),
        (
            "LRT_VALIDATION_ONE_CSV",
            write("one-positive.csv", &files.one_positive).into(),
        ),
        (
            "LRT_VALIDATION_ONE_EXPECTED",
            write("one-positive.json", &one.to_string()).into(),
        ),
        (
            "LRT_VALIDATION_BAD_CSV",
            write("bad-time.csv", &files.bad).into(),
        ),
        (
            "LRT_VALIDATION_BAD_MESSAGE",
            write("bad-time.txt", &refusal).into(),
        ),
    ];

    // --- Chromium. --------------------------------------------------------------------------
    let today = chrono::Utc::now().date_naive();
    let query = format!(
        "from={}&to={}&interval=day",
        today - chrono::Duration::days(6),
        today + chrono::Duration::days(1)
    );
    let shots = screenshots();
    let (base, browser) = (s.app.base.clone(), repo_root().join("tests/browser"));
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(&script)
            .current_dir(&browser)
            .env("LRT_BASE", base)
            .env("LRT_AUTH_HEADER", IAP_HEADER)
            .env("LRT_AUTH_VALUE", lead)
            .env("LRT_QUERY", &query)
            .env("LRT_CARD_LINK", link)
            .env("LRT_SCREENSHOTS", &shots)
            .env("CHROMIUM", chromium)
            .status()
    })
    .await
    .expect("the browser run")
    .expect("node starts (Node 20: make tools)");
    assert!(status.success(), "the browser test failed ({status})");

    // --- Chromium: the validation view. -----------------------------------------------------
    let script = repo_root().join("tests/browser/validation.mjs");
    let (base, browser) = (s.app.base.clone(), repo_root().join("tests/browser"));
    let (lead, shots, chromium) = (s.proxy.quality_lead(), screenshots(), chromium_path());
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(&script)
            .current_dir(&browser)
            .env("LRT_BASE", base)
            .env("LRT_AUTH_HEADER", IAP_HEADER)
            .env("LRT_AUTH_VALUE", lead)
            .env("LRT_SCREENSHOTS", &shots)
            .env("CHROMIUM", chromium)
            .envs(validation_env)
            .status()
    })
    .await
    .expect("the browser run")
    .expect("node starts (Node 20: make tools)");
    assert!(
        status.success(),
        "the validation view's browser test failed ({status})"
    );
    for shot in [
        "dashboard-overview.png",
        "dashboard-evaluation.png",
        "dashboard-validation.png",
    ] {
        let path = screenshots().join(shot);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} missing or empty", path.display());
    }
    s.app.stop().await;
}
