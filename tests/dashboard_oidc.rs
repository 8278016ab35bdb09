//! The quality dashboard's OpenID Connect sign-in end to end (issue 10): `lrt serve` on a
//! database of its own, a real local OpenID provider (`lrt_e2e::oidc_provider`: discovery,
//! `/authorize`, `/token` checking the client's authentication and the PKCE verifier, ES256 ID
//! tokens, `/jwks`), and a browser's HTTP side (`lrt_e2e::browser`: reqwest, cookies per host
//! and path, redirects followed one by one).
//!
//! * the whole round: `/dashboard` unauthenticated → `/dashboard/login` → the provider →
//!   `/dashboard/callback` → the session cookie (its attributes) → `/dashboard/session` → the
//!   API with only the cookie → a change without, with a wrong, with the right CSRF token →
//!   logout → the cookie answers 401 and its row is gone;
//! * what must fail closed, each without a session: a wrong `state`, a callback from another
//!   browser, a callback or a code used twice, an ID token with another `nonce`, `aud` or `iss`,
//!   expired, or signed by another key; the token endpoint failing (503, a page without
//!   internals); a person without the quality group or a tenant (403);
//! * a tenant's person sees its tenant's evaluations only (two tenants seeded by real CDS Hooks
//!   calls);
//! * `client_secret_post` when the provider offers only that;
//! * expired sessions removed by one housekeeping step, a live one kept.

use lrt_auth::{AuthConfig, TrustedIssuer};
use lrt_e2e::browser::{Answer, Browser};
use lrt_e2e::cds_client::{CdsClient, JwksServer};
use lrt_e2e::oidc_provider::{ClientAuthUsed, IdTokenFault, OidcProvider};
use lrt_e2e::service::TestApp;
use lrt_e2e::synthetic::{self, BORDERLINE, ELIGIBLE, STABLE};
use lrt_server::service::config::EvaluationTime;
use lrt_server::service::dashboard::config::{AccessConfig, OidcConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PV: &str = "/cds-services/lrt-patient-view";
const EHR: &str = "https://ehr.test.example";
const CLIENT_ID: &str = "lrt-dashboard";
/// With the characters RFC 6749 §2.3.1 makes a client form-urlencode before HTTP Basic.
const CLIENT_SECRET: &str = "test-only s3cret:with/odd+chars%";
const SESSION_TTL_S: u64 = 3600;

struct Setup {
    app: TestApp,
    provider: OidcProvider,
    ehr: CdsClient,
    _ehr_jwks: JwksServer,
    _dir: tempfile::TempDir,
}

async fn setup_with(provider: OidcProvider) -> Setup {
    lrt_fhir::client::install_crypto_provider();
    let ehr = CdsClient::new(EHR);
    let ehr_jwks = JwksServer::start(ehr.jwks()).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).expect("the secret file");
    let mut issuer = TrustedIssuer::new(ehr.iss.clone());
    issuer.jwks_url = Some(ehr_jwks.url.parse().expect("a JWKS URL"));
    let mut auth = AuthConfig::new(vec![issuer]);
    auth.allow_insecure_loopback_http = true;
    let op_issuer = provider.issuer.clone();
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.evaluation_time = EvaluationTime::NewestBloodGas;
        c.dashboard.session_ttl_s = SESSION_TTL_S;
        c.dashboard.oidc = Some(OidcConfig {
            issuer: op_issuer,
            client_id: CLIENT_ID.into(),
            client_secret_file: Some(secret),
            client_secret_env: None,
            scopes: "openid email profile groups".into(),
        });
        c.dashboard.access = AccessConfig {
            all_tenants_claim: Some("groups".into()),
            all_tenants_values: vec!["lrt-quality".into()],
            tenant_claim: Some("tenant".into()),
            tenant_issuer: Some(EHR.into()),
        };
    })
    .await;
    provider.register_redirect_uri(&app.url("/dashboard/callback"));
    Setup {
        app,
        provider,
        ehr,
        _ehr_jwks: ehr_jwks,
        _dir: dir,
    }
}

async fn setup() -> Setup {
    setup_with(OidcProvider::start(CLIENT_ID, CLIENT_SECRET).await).await
}

fn quality_lead() -> Value {
    json!({"sub": "u-lead", "email": "quality.lead@hospital.example", "name": "Quality Lead",
           "groups": ["staff", "lrt-quality"]})
}

fn nurse_of(tenant: &str) -> Value {
    json!({"sub": format!("u-nurse-{tenant}"), "email": format!("nurse@{tenant}.example"),
           "name": "A Nurse", "groups": ["staff"], "tenant": tenant})
}

impl Setup {
    fn host(&self) -> String {
        self.app.addr.ip().to_string()
    }

    /// A CDS Hooks call as the EHR for `tenant`.
    async fn hook_for(&self, tenant: &str, request: &Value) {
        let url = self.app.url(PV);
        let mut claims = self.ehr.claims(&url);
        claims["tenant"] = json!(tenant);
        let res = self
            .app
            .http
            .post(&url)
            .bearer_auth(self.ehr.sign(&self.ehr.header(), &claims))
            .header("content-type", "application/json")
            .body(request.to_string())
            .send()
            .await
            .expect("the service answers");
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            res.text().await.unwrap()
        );
    }

    /// `/dashboard` → login → provider → callback: the answers on the way (the callback's last
    /// when it does not redirect back).
    async fn sign_in(&self, browser: &mut Browser, person: Value) -> Vec<Answer> {
        self.provider.sign_in_as(person);
        browser.navigate(&self.app.url("/dashboard")).await
    }

    /// Up to the provider's redirect back to the callback (not followed): its URL.
    async fn until_callback(&self, browser: &mut Browser, person: Value) -> String {
        self.provider.sign_in_as(person);
        let login = browser.get(&self.app.url("/dashboard/login")).await;
        assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
        let back = browser
            .get(login.location().expect("to the provider"))
            .await;
        assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
        back.location().expect("to the callback").to_string()
    }

    async fn sessions(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM dashboard_session")
            .fetch_one(&self.app.pool)
            .await
            .expect("count sessions")
    }
}

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Checks a `/dashboard/session` answer against its schema in `openapi/openapi.yaml`.
fn assert_documented_session(answer: &Value) {
    let doc: Value = serde_saphyr::from_str(lrt_server::service::routes::health::OPENAPI)
        .expect("the OpenAPI document reads");
    let schema = &doc["paths"]["/dashboard/session"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    let validator = jsonschema::draft202012::new(schema).expect("the schema compiles");
    assert!(
        !validator.is_valid(&json!({"signed_in": "yes"})),
        "the schema checks"
    );
    let errors: Vec<String> = validator
        .iter_errors(answer)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{answer}: {errors:?}");
}

/// A failed sign-in: the status, an HTML page that says so and carries no internals, and the
/// login cookie cleared.
fn assert_sign_in_failed(answer: &Answer, status: StatusCode, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert!(
        answer.content_type().starts_with("text/html"),
        "{what}: {}",
        answer.content_type()
    );
    assert!(
        answer.body.contains("Sign-in failed"),
        "{what}: {}",
        answer.body
    );
    assert!(
        answer.body.contains("href=\"/dashboard/login\""),
        "{what}: {}",
        answer.body
    );
    for leak in [
        "127.0.0.1",
        "10.0.0.7",
        "reqwest",
        "sqlx",
        "id_token",
        "nonce",
    ] {
        assert!(
            !answer.body.contains(leak),
            "{what} shows {leak}: {}",
            answer.body
        );
    }
    assert!(answer.set_cookie("lrt_session").is_none(), "{what}");
    assert_eq!(
        answer.set_cookie("lrt_login").and_then(|c| c.max_age),
        Some(0),
        "{what}: the login cookie is cleared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_reads_changes_with_the_csrf_token_and_signs_out() {
    let s = setup().await;
    s.hook_for(
        "hospital-a",
        &synthetic::patient_view("oidc-a-1", BORDERLINE),
    )
    .await;
    s.hook_for("hospital-b", &synthetic::patient_view("oidc-b-1", ELIGIBLE))
        .await;
    let mut browser = Browser::new();

    // Unauthenticated: the page sends the browser to the sign-in, which sends it to the
    // provider with a PKCE S256 challenge, a state and a nonce, and binds the state to it.
    let hops = s.sign_in(&mut browser, quality_lead()).await;
    let statuses: Vec<u16> = hops.iter().map(|h| h.status.as_u16()).collect();
    assert_eq!(statuses, [303, 303, 303, 303, 200], "{hops:#?}");
    assert_eq!(
        hops[0].location(),
        Some("/dashboard/login?return_to=%2Fdashboard")
    );
    let authorize = query_of(hops[1].location().expect("to the provider"));
    assert!(
        hops[2]
            .url
            .starts_with(&format!("{}/authorize?", s.provider.issuer))
    );
    assert_eq!(authorize["response_type"], "code");
    assert_eq!(authorize["client_id"], CLIENT_ID);
    assert_eq!(authorize["redirect_uri"], s.app.url("/dashboard/callback"));
    assert_eq!(authorize["scope"], "openid email profile groups");
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(authorize["state"].len(), 43);
    assert_eq!(authorize["nonce"].len(), 43);
    let login_cookie = hops[1].set_cookie("lrt_login").expect("the login cookie");
    assert_eq!(login_cookie.value, authorize["state"]);
    assert!(login_cookie.http_only && !login_cookie.secure);
    assert_eq!(login_cookie.same_site.as_deref(), Some("Lax"));
    assert_eq!(login_cookie.path.as_deref(), Some("/dashboard/callback"));
    assert_eq!(login_cookie.max_age, Some(600));

    // The callback: back to the page, the session cookie set, the login cookie cleared.
    let callback = &hops[3];
    assert!(callback.url.starts_with(&s.app.url("/dashboard/callback?")));
    assert_eq!(callback.location(), Some("/dashboard"));
    let session = callback
        .set_cookie("lrt_session")
        .expect("the session cookie");
    assert_eq!(session.value.len(), 43, "a random id");
    assert!(session.http_only, "{}", session.raw);
    assert_eq!(session.same_site.as_deref(), Some("Lax"), "{}", session.raw);
    assert_eq!(session.path.as_deref(), Some("/"), "{}", session.raw);
    assert_eq!(
        session.max_age,
        Some(SESSION_TTL_S as i64),
        "{}",
        session.raw
    );
    // Plain http on a loopback address only; an https dashboard's cookie is Secure.
    assert!(!session.secure, "{}", session.raw);
    assert_eq!(
        callback.set_cookie("lrt_login").and_then(|c| c.max_age),
        Some(0)
    );
    assert!(hops[4].content_type().starts_with("text/html"));
    let session_id = session.value.clone();

    // The provider saw HTTP Basic with the form-urlencoded secret, and a verifier that matched.
    let requests = s.provider.token_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].client_auth, Some(ClientAuthUsed::Basic));
    assert_eq!(requests[0].status, 200, "{requests:?}");

    // The session row: the digest of the cookie's id, never the id; the person's email.
    let (name, all): (String, bool) = sqlx::query_as(
        "SELECT display_name, all_tenants FROM dashboard_session WHERE id_digest = $1",
    )
    .bind(Sha256::digest(session_id.as_bytes()).to_vec())
    .fetch_one(&s.app.pool)
    .await
    .expect("the session row, keyed by the id's digest");
    assert_eq!(
        (name.as_str(), all),
        ("quality.lead@hospital.example", true)
    );
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dashboard_session WHERE encode(id_digest, 'escape') = $1",
    )
    .bind(&session_id)
    .fetch_one(&s.app.pool)
    .await
    .expect("count");
    assert_eq!(plain, 0);

    // Who is signed in.
    let who = browser.get(&s.app.url("/dashboard/session")).await;
    assert_eq!(who.status, StatusCode::OK, "{}", who.body);
    let who = who.json();
    assert_eq!(who["signed_in"], true, "{who}");
    assert_eq!(who["mode"], "oidc");
    assert_eq!(who["name"], "quality.lead@hospital.example");
    assert_eq!(who["scope"], "all tenants");
    assert_eq!(who["logout"], true);
    assert_documented_session(&who);
    let csrf = who["csrf"].as_str().expect("a CSRF token").to_string();
    assert_eq!(csrf.len(), 43);

    // The API with only the cookie: every tenant's calls.
    let alerts = browser.get(&s.app.url("/api/v1/quality/alerts")).await;
    assert_eq!(alerts.status, StatusCode::OK, "{}", alerts.body);
    assert_eq!(alerts.json()["totals"]["calls"], 2, "{}", alerts.body);

    // A change: without the CSRF header 403, with another token 403, with the session's 200.
    let validation = s.app.url("/api/v1/quality/validation");
    let adjudications = json!({"adjudications": [
        {"patient": "oidc-a-1", "time": "2026-11-30T12:00:00Z", "category": "borderline",
         "consult_warranted": true}]})
    .to_string();
    let body = || Some(("application/json", adjudications.clone()));
    let no_token = browser.send(Method::POST, &validation, &[], body()).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN, "{}", no_token.body);
    let other = "A".repeat(43);
    let wrong = browser
        .send(Method::POST, &validation, &[("x-lrt-csrf", &other)], body())
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);
    let right = browser
        .send(Method::POST, &validation, &[("x-lrt-csrf", &csrf)], body())
        .await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);
    assert_eq!(right.json()["adjudications"], 1, "{}", right.body);

    // Logout needs the CSRF header too; then the cookie is cleared and its session gone.
    let logout = s.app.url("/dashboard/logout");
    let refused = browser.request(Method::POST, &logout, &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(s.sessions().await, 1);
    let out = browser
        .request(Method::POST, &logout, &[("x-lrt-csrf", &csrf)])
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.json()["signed_out"], true);
    assert_eq!(
        out.json()["end_session_endpoint"],
        s.provider.end_session_endpoint()
    );
    assert_eq!(
        out.set_cookie("lrt_session").and_then(|c| c.max_age),
        Some(0)
    );
    assert_eq!(browser.cookie(&s.host(), "lrt_session"), None);
    assert_eq!(s.sessions().await, 0, "the session row is deleted");

    // The old cookie, replayed by hand, no longer works.
    let mut thief = Browser::new();
    thief.put_cookie(&s.host(), "lrt_session", &session_id, "/");
    let stale = thief.get(&s.app.url("/api/v1/quality/alerts")).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED, "{}", stale.body);
    let who = thief.get(&s.app.url("/dashboard/session")).await.json();
    assert_eq!(who["signed_in"], false, "{who}");
    assert_eq!(who["login"], "/dashboard/login");
    assert_documented_session(&who);
    let page = thief
        .get(
            &s.app
                .url("/dashboard/evaluations/00000000-0000-4000-8000-000000000000"),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        Some(
            "/dashboard/login?return_to=%2Fdashboard%2Fevaluations%2F00000000-0000-4000-8000-000000000000"
        )
    );
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_callback_and_id_token_fails_closed() {
    let s = setup().await;
    let lead = quality_lead;

    // A state that is not this browser's.
    let mut browser = Browser::new();
    let callback = s.until_callback(&mut browser, lead()).await;
    let forged = callback.replace("state=", "state=x");
    assert_sign_in_failed(
        &browser.get(&forged).await,
        StatusCode::UNAUTHORIZED,
        "wrong state",
    );

    // The right callback from another browser (login CSRF): no login cookie.
    let callback = s.until_callback(&mut Browser::new(), lead()).await;
    let answer = Browser::new().get(&callback).await;
    assert_sign_in_failed(&answer, StatusCode::UNAUTHORIZED, "another browser");

    // A callback used twice: the first opens a session, the second (its login cookie put back
    // as an attacker holding it would) does not.
    let mut browser = Browser::new();
    let callback = s.until_callback(&mut browser, lead()).await;
    let state = query_of(&callback)["state"].clone();
    let first = browser.get(&callback).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert_eq!(s.sessions().await, 1);
    let mut again = Browser::new();
    again.put_cookie(&s.host(), "lrt_login", &state, "/dashboard/callback");
    assert_sign_in_failed(
        &again.get(&callback).await,
        StatusCode::UNAUTHORIZED,
        "callback reused",
    );
    assert_eq!(s.sessions().await, 1);

    // A code used twice: a new login's callback carrying the spent code. The provider refuses
    // it (and the new login's verifier would not match its challenge either).
    let spent = query_of(&callback)["code"].clone();
    let mut browser = Browser::new();
    let fresh = s.until_callback(&mut browser, lead()).await;
    let fresh_code = query_of(&fresh)["code"].clone();
    let replayed = fresh.replace(&format!("code={fresh_code}"), &format!("code={spent}"));
    assert_ne!(replayed, fresh);
    assert_sign_in_failed(
        &browser.get(&replayed).await,
        StatusCode::UNAUTHORIZED,
        "code reused",
    );
    assert_eq!(
        s.provider
            .token_requests()
            .last()
            .and_then(|r| r.error.clone())
            .as_deref(),
        Some("invalid_grant")
    );
    assert_eq!(s.sessions().await, 1);

    // The provider says the person refused.
    let answer = Browser::new()
        .get(&s.app.url("/dashboard/callback?error=access_denied&state=x"))
        .await;
    assert_sign_in_failed(&answer, StatusCode::UNAUTHORIZED, "provider error");

    // ID tokens the service must refuse.
    for fault in [
        IdTokenFault::WrongNonce,
        IdTokenFault::WrongAudience,
        IdTokenFault::WrongIssuer,
        IdTokenFault::Expired,
        IdTokenFault::OtherKey,
    ] {
        s.provider.spoil_id_tokens(fault);
        let hops = s.sign_in(&mut Browser::new(), lead()).await;
        let last = hops.last().expect("an answer");
        assert!(
            last.url.starts_with(&s.app.url("/dashboard/callback?")),
            "{fault:?}"
        );
        assert_sign_in_failed(last, StatusCode::UNAUTHORIZED, &format!("{fault:?}"));
        assert_eq!(
            s.provider.token_requests().last().map(|r| r.status),
            Some(200),
            "{fault:?}: the provider answered an ID token"
        );
        assert_eq!(s.sessions().await, 1, "{fault:?}");
    }
    s.provider.spoil_id_tokens(IdTokenFault::None);

    // The token endpoint failing: 503 and a page that shows none of the provider's answer.
    s.provider
        .fail_token_endpoint(Some(StatusCode::INTERNAL_SERVER_ERROR));
    let hops = s.sign_in(&mut Browser::new(), lead()).await;
    let last = hops.last().expect("an answer");
    assert_sign_in_failed(last, StatusCode::SERVICE_UNAVAILABLE, "token endpoint 500");
    assert_eq!(
        last.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    s.provider.fail_token_endpoint(None);
    assert_eq!(s.sessions().await, 1);

    // A person whose claims grant nothing: 403, no session.
    let hops = s
        .sign_in(
            &mut Browser::new(),
            json!({"sub": "u-x", "email": "visitor@hospital.example", "groups": ["staff"]}),
        )
        .await;
    assert_sign_in_failed(
        hops.last().expect("an answer"),
        StatusCode::FORBIDDEN,
        "no tenancy",
    );
    assert_eq!(s.sessions().await, 1);

    // After all that, a good sign-in still works.
    let hops = s.sign_in(&mut Browser::new(), lead()).await;
    assert_eq!(
        hops.last().map(|h| h.status),
        Some(StatusCode::OK),
        "{hops:#?}"
    );
    assert_eq!(s.sessions().await, 2);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_s_person_sees_its_tenant_s_evaluations_only() {
    let s = setup().await;
    for (i, gases) in [BORDERLINE, ELIGIBLE, STABLE].iter().enumerate() {
        s.hook_for(
            "hospital-a",
            &synthetic::patient_view(&format!("oidc-a-{i}"), gases),
        )
        .await;
    }
    for (i, gases) in [ELIGIBLE, BORDERLINE].iter().enumerate() {
        s.hook_for(
            "hospital-b",
            &synthetic::patient_view(&format!("oidc-b-{i}"), gases),
        )
        .await;
    }
    let mut a = Browser::new();
    let hops = s.sign_in(&mut a, nurse_of("hospital-a")).await;
    assert_eq!(
        hops.last().map(|h| h.status),
        Some(StatusCode::OK),
        "{hops:#?}"
    );
    let who = a.get(&s.app.url("/dashboard/session")).await.json();
    assert_eq!(who["name"], "nurse@hospital-a.example", "{who}");
    assert_eq!(who["scope"], format!("tenant hospital-a of {EHR}"), "{who}");

    let list = a.get(&s.app.url("/api/v1/evaluations?limit=100")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let mut patients: Vec<String> = list.json()["evaluations"]
        .as_array()
        .expect("evaluations")
        .iter()
        .map(|e| e["patient_id"].as_str().expect("patient_id").to_string())
        .collect();
    patients.sort();
    patients.dedup();
    assert_eq!(
        patients,
        ["oidc-a-0", "oidc-a-1", "oidc-a-2"],
        "{}",
        list.body
    );
    let alerts = a.get(&s.app.url("/api/v1/quality/alerts")).await.json();
    assert_eq!(alerts["totals"]["calls"], 3, "{alerts}");

    // Another tenant's evaluation is not found.
    let mut b = Browser::new();
    s.sign_in(&mut b, nurse_of("hospital-b")).await;
    let list = b
        .get(&s.app.url("/api/v1/evaluations?limit=100"))
        .await
        .json();
    let theirs = list["evaluations"][0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    assert_eq!(
        list["evaluations"][0]["patient_id"]
            .as_str()
            .map(|p| p.starts_with("oidc-b-")),
        Some(true)
    );
    let one = a
        .get(&s.app.url(&format!("/api/v1/evaluations/{theirs}")))
        .await;
    assert_eq!(one.status, StatusCode::NOT_FOUND, "{}", one.body);
    let mine = b
        .get(&s.app.url(&format!("/api/v1/evaluations/{theirs}")))
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);

    // The quality lead sees both tenants.
    let mut lead = Browser::new();
    s.sign_in(&mut lead, quality_lead()).await;
    let alerts = lead.get(&s.app.url("/api/v1/quality/alerts")).await.json();
    assert_eq!(alerts["totals"]["calls"], 5, "{alerts}");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_goes_in_the_form_when_the_provider_offers_only_client_secret_post() {
    let provider = OidcProvider::start(CLIENT_ID, CLIENT_SECRET).await;
    provider.offer_auth_methods(&["client_secret_post"]);
    let s = setup_with(provider).await;
    let hops = s.sign_in(&mut Browser::new(), quality_lead()).await;
    assert_eq!(
        hops.last().map(|h| h.status),
        Some(StatusCode::OK),
        "{hops:#?}"
    );
    let requests = s.provider.token_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].client_auth, Some(ClientAuthUsed::Post));
    assert_eq!(s.sessions().await, 1);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_housekeeping_step_removes_expired_sessions_and_keeps_live_ones() {
    let s = setup().await;
    let (mut gone, mut kept) = (Browser::new(), Browser::new());
    s.sign_in(&mut gone, quality_lead()).await;
    s.sign_in(&mut kept, nurse_of("hospital-a")).await;
    // A login started and never finished, and one session, put past their expiry.
    s.until_callback(&mut Browser::new(), quality_lead()).await;
    let gone_id = gone
        .cookie(&s.host(), "lrt_session")
        .expect("a session cookie");
    let backdated = sqlx::query(
        "UPDATE dashboard_session SET expires_at = now() - interval '1 second' WHERE id_digest = $1",
    )
    .bind(Sha256::digest(gone_id.as_bytes()).to_vec())
    .execute(&s.app.pool)
    .await
    .expect("backdate")
    .rows_affected();
    assert_eq!(backdated, 1);
    sqlx::query("UPDATE dashboard_login SET expires_at = now() - interval '1 second'")
        .execute(&s.app.pool)
        .await
        .expect("backdate the login");
    assert_eq!(s.sessions().await, 2);

    let mut schedule = lrt_server::service::housekeeping::Schedule::default();
    lrt_server::service::housekeeping::tick(&s.app.pool, &Default::default(), &mut schedule).await;

    assert_eq!(s.sessions().await, 1, "the expired session is deleted");
    let logins: i64 = sqlx::query_scalar("SELECT count(*) FROM dashboard_login")
        .fetch_one(&s.app.pool)
        .await
        .expect("count logins");
    assert_eq!(logins, 0, "the unfinished login is deleted");
    let left: String = sqlx::query_scalar("SELECT display_name FROM dashboard_session")
        .fetch_one(&s.app.pool)
        .await
        .expect("the live session");
    assert_eq!(left, "nurse@hospital-a.example");
    let who = kept.get(&s.app.url("/dashboard/session")).await.json();
    assert_eq!(
        who["signed_in"], true,
        "the live session still works: {who}"
    );
    let who = gone.get(&s.app.url("/dashboard/session")).await.json();
    assert_eq!(who["signed_in"], false, "{who}");
    s.app.stop().await;
}
