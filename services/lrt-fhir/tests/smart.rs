//! SMART Backend Services against a real local authorization server and FHIR server (axum on
//! 127.0.0.1): the client assertion is checked as an EHR checks it (ES384 signature with the
//! registered public key, `iss` = `sub` = client id, `aud` = the token endpoint, a fresh `jti`,
//! at most five minutes), the token is cached and shared, renewed when it expires and when the
//! FHIR server refuses it, and a refusal of the client names the OAuth error, never a secret.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_FIXED, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
};
use aws_lc_rs::signature::{KeyPair, UnparsedPublicKey};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use lrt_fhir::smart::{Algorithm, BackendAuth, BackendAuthConfig, SigningKey};
use lrt_fhir::{ClientConfig, FhirClient, FhirError};
use serde_json::{Value, json};

const CLIENT: &str = "lrt-cds-test";
const SCOPE: &str = "system/Patient.rs system/Observation.rs";

/// The authorization server and the FHIR server in one (as many EHRs are).
#[derive(Clone)]
struct Ehr {
    public_key: Arc<Vec<u8>>,
    root: Arc<Mutex<String>>,
    issued: Arc<AtomicUsize>,
    /// The token the FHIR server accepts now ("" = none).
    valid: Arc<Mutex<String>>,
    jtis: Arc<Mutex<HashSet<String>>>,
    expires_in: Arc<AtomicU64>,
    refuse_client: Arc<AtomicBool>,
    problems: Arc<Mutex<Vec<String>>>,
}

impl Ehr {
    fn problem(&self, p: String) {
        self.problems.lock().unwrap().push(p);
    }
    fn token_url(&self) -> String {
        format!("{}/auth/token", self.root.lock().unwrap())
    }
}

async fn smart_configuration(State(ehr): State<Ehr>) -> impl IntoResponse {
    axum::Json(json!({"token_endpoint": ehr.token_url(),
                      "grant_types_supported": ["client_credentials"]}))
}

async fn token(State(ehr): State<Ehr>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if ehr.refuse_client.load(Ordering::SeqCst) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_client", "error_description": "unknown key"})),
        )
            .into_response();
    }
    if field("grant_type") != "client_credentials"
        || field("scope") != SCOPE
        || field("client_assertion_type")
            != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    {
        ehr.problem(format!("form: {form:?}"));
        return StatusCode::BAD_REQUEST.into_response();
    }
    let assertion = field("client_assertion");
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        ehr.problem(format!("not a compact JWS: {assertion}"));
        return StatusCode::BAD_REQUEST.into_response();
    }
    let decode = |p: &str| -> Value {
        serde_json::from_slice(&B64.decode(p).unwrap_or_default()).unwrap_or(Value::Null)
    };
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    let signature = B64.decode(parts[2]).unwrap_or_default();
    let signed = UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, ehr.public_key.as_slice())
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .is_ok();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let jti = claims["jti"].as_str().unwrap_or("").to_string();
    let fresh_jti = !jti.is_empty() && ehr.jtis.lock().unwrap().insert(jti);
    if !signed
        || header["alg"] != "ES384"
        || header["kid"] != "key-1"
        || claims["iss"] != CLIENT
        || claims["sub"] != CLIENT
        || claims["aud"] != ehr.token_url().as_str()
        || exp <= now
        || exp > now + 300
        || !fresh_jti
    {
        ehr.problem(format!("assertion: {header} {claims} signed={signed}"));
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let n = ehr.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let access = format!("test-access-token-{n}");
    *ehr.valid.lock().unwrap() = access.clone();
    axum::Json(json!({"access_token": access, "token_type": "bearer",
                      "expires_in": ehr.expires_in.load(Ordering::SeqCst), "scope": SCOPE}))
    .into_response()
}

async fn patient(State(ehr): State<Ehr>, headers: HeaderMap) -> Response {
    let valid = format!("Bearer {}", ehr.valid.lock().unwrap());
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if given != valid {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(json!({"resourceType": "Patient", "id": "p1"})).into_response()
}

/// The EHR on a free port and a client key it trusts.
async fn start() -> (Ehr, String, SigningKey) {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let ehr = Ehr {
        public_key: Arc::new(pair.public_key().as_ref().to_vec()),
        root: Arc::default(),
        issued: Arc::default(),
        valid: Arc::default(),
        jtis: Arc::default(),
        expires_in: Arc::new(AtomicU64::new(300)),
        refuse_client: Arc::default(),
        problems: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/fhir/.well-known/smart-configuration",
            get(smart_configuration),
        )
        .route("/auth/token", post(token))
        .route("/fhir/Patient/p1", get(patient))
        .with_state(ehr.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    *ehr.root.lock().unwrap() = root.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // The key as the service reads it: a PKCS#8 PEM file.
    let dir = tempfile::tempdir().unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(pkcs8.as_ref())
    );
    let path = dir.path().join("key.pem");
    std::fs::write(&path, pem).unwrap();
    let key = SigningKey::from_pem_file(&path, Algorithm::ES384, "key-1").unwrap();
    (ehr, format!("{root}/fhir"), key)
}

fn client(base: &str, key: SigningKey, token_url: Option<String>) -> FhirClient {
    let auth = BackendAuth::new(BackendAuthConfig {
        client_id: CLIENT.into(),
        token_url: token_url.map(|u| url::Url::parse(&u).unwrap()),
        scope: SCOPE.into(),
        key,
    });
    FhirClient::new(base, None, ClientConfig::default())
        .unwrap()
        .with_backend_auth(auth)
}

#[tokio::test]
async fn one_token_serves_many_requests_from_a_discovered_endpoint() {
    let (ehr, base, key) = start().await;
    let fhir = client(&base, key, None);
    for _ in 0..3 {
        fhir.read("Patient", "p1").await.expect("read with a token");
    }
    assert_eq!(ehr.problems.lock().unwrap().clone(), Vec::<String>::new());
    assert_eq!(ehr.issued.load(Ordering::SeqCst), 1, "the token is cached");
}

#[tokio::test]
async fn a_refused_token_is_renewed_once_and_an_expiring_one_before_it_expires() {
    let (ehr, base, key) = start().await;
    let fhir = client(&base, key, Some(ehr.token_url()));
    fhir.read("Patient", "p1").await.unwrap();
    // The EHR revokes it: the next request gets a 401, then a new token, then the data.
    *ehr.valid.lock().unwrap() = "revoked".into();
    fhir.read("Patient", "p1")
        .await
        .expect("renewed after a 401");
    assert_eq!(ehr.issued.load(Ordering::SeqCst), 2);
    // Tokens that live 2 s are renewed 0.4 s before they expire.
    ehr.expires_in.store(2, Ordering::SeqCst);
    *ehr.valid.lock().unwrap() = "revoked".into();
    fhir.read("Patient", "p1").await.unwrap();
    assert_eq!(ehr.issued.load(Ordering::SeqCst), 3);
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    fhir.read("Patient", "p1").await.unwrap();
    assert_eq!(
        ehr.issued.load(Ordering::SeqCst),
        4,
        "renewed before expiry"
    );
    assert_eq!(ehr.problems.lock().unwrap().clone(), Vec::<String>::new());
}

#[tokio::test]
async fn a_refused_client_gets_an_authorization_error_naming_the_oauth_error() {
    let (ehr, base, key) = start().await;
    ehr.refuse_client.store(true, Ordering::SeqCst);
    let fhir = client(&base, key, Some(ehr.token_url()));
    let e = fhir.read("Patient", "p1").await.unwrap_err();
    assert!(matches!(e, FhirError::Authorization { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("invalid_client"), "{message}");
    assert!(message.contains("/auth/token"), "{message}");
    assert!(
        !message.contains("eyJ"),
        "no assertion in the message: {message}"
    );
}

#[test]
fn a_key_that_is_not_pkcs8_p384_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-key.pem");
    std::fs::write(&path, "not a key").unwrap();
    let e = SigningKey::from_pem_file(&path, Algorithm::ES384, "k").unwrap_err();
    assert!(e.to_string().contains("not-a-key.pem"), "{e}");
    let der = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P384_SHA384_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    assert!(SigningKey::from_pkcs8(der.as_ref(), Algorithm::RS384, "k").is_err());
    assert!(SigningKey::from_pkcs8(der.as_ref(), Algorithm::ES384, "").is_err());
}
