//! End-to-end checks of the verifier: every rejection of CDS Hooks 2.0 section H (and of the
//! cds-hooks best practices) and the accept paths, with real signatures, a real JWK Set server
//! (axum on 127.0.0.1, port chosen by the OS) and keys made at test time (EC P-384) or read
//! from a committed TEST-ONLY fixture (RSA).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use lrt_auth::{
    AuthConfig, ConfigError, JwtAlgorithm, MemoryReplayStore, Rejection, TrustedIssuer, Verifier,
};
use p384::elliptic_curve::sec1::ToEncodedPoint;
use p384::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

const AUD: &str = "https://cds.example.org/cds-services/lrt-consult";
const ISS: &str = "https://ehr.example.org";
const RSA_KID: &str = "test-only-rsa-1";

// ---------------------------------------------------------------------------------------------
// Keys and tokens

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// A fresh `jti`.
fn jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", now(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An EC P-384 key pair made for this test run.
struct EcKey {
    kid: String,
    private: EncodingKey,
    /// The public key as a JWK.
    jwk: Value,
    /// The public key as an uncompressed SEC1 point (what a key-confusion attacker would use
    /// as an HMAC secret).
    public_sec1: Vec<u8>,
}

fn ec_key(kid: &str) -> EcKey {
    let secret = p384::SecretKey::random(&mut rand_core::OsRng);
    let der = secret.to_pkcs8_der().unwrap();
    let point = secret.public_key().to_encoded_point(false);
    let jwk = json!({
        "kty": "EC", "crv": "P-384", "kid": kid, "use": "sig", "alg": "ES384",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
    });
    EcKey {
        kid: kid.to_owned(),
        private: EncodingKey::from_ec_der(der.as_bytes()),
        jwk,
        public_sec1: point.as_bytes().to_vec(),
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Writes `json` to a file `name` in a new temporary directory.
fn temp_file(name: &str, json: &Value) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lrt-auth-test-{}-{}", std::process::id(), jti()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

/// The committed TEST-ONLY RSA key (PKCS#1 PEM).
fn rsa_private() -> EncodingKey {
    let pem = std::fs::read_to_string(fixture("test-only-rsa-2048-private.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    EncodingKey::from_rsa_der(&STANDARD.decode(body).unwrap())
}

/// A header for `alg` and `kid` with `typ: JWT`.
fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "JWT", "kid": kid})
}

/// Valid CDS Hooks claims for [`ISS`] and [`AUD`]: 5 minutes, like the reference clients.
fn claims() -> Value {
    let now = now();
    json!({"iss": ISS, "aud": AUD, "iat": now, "exp": now + 300, "jti": jti()})
}

/// `header.payload` with the given JSON, base64url-encoded.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

/// A token signed with `key` under `alg` (whatever the header says).
fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = signing_input(header, claims);
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

fn es384(key: &EcKey, claims: &Value) -> String {
    sign(
        &header("ES384", &key.kid),
        claims,
        &key.private,
        Algorithm::ES384,
    )
}

fn es384_jku(key: &EcKey, jku: &str, claims: &Value) -> String {
    let mut h = header("ES384", &key.kid);
    h["jku"] = json!(jku);
    sign(&h, claims, &key.private, Algorithm::ES384)
}

/// `claims()` with `changes` merged in (a `null` removes the claim).
fn claims_with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

// ---------------------------------------------------------------------------------------------
// A real JWK Set server

#[derive(Clone, Default)]
struct ServerState {
    jwks: Arc<Mutex<Value>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

/// An HTTP server on 127.0.0.1 serving, on every path under `/jwks` and `/evil`, the current
/// JWK Set; `/status500`, `/redirect` (to `/jwks`), `/big` (over 64 KiB) and `/notjson` for
/// the failure cases. It counts requests per path.
struct JwksServer {
    base: String,
    state: ServerState,
}

impl JwksServer {
    async fn start(keys: &[&EcKey]) -> JwksServer {
        let state = ServerState::default();
        let server = JwksServer {
            base: String::new(),
            state: state.clone(),
        };
        server.set_keys(keys);
        let app = Router::new().fallback(serve).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer {
            base: format!("http://{addr}"),
            ..server
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn set_keys(&self, keys: &[&EcKey]) {
        let keys: Vec<Value> = keys.iter().map(|k| k.jwk.clone()).collect();
        *self.state.jwks.lock().unwrap() = json!({ "keys": keys });
    }

    fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn total_hits(&self) -> usize {
        self.state.hits.lock().unwrap().values().sum()
    }
}

async fn serve(
    axum::extract::State(state): axum::extract::State<ServerState>,
    uri: Uri,
) -> Response {
    let path = uri.path().to_owned();
    *state.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let jwks = state.jwks.lock().unwrap().to_string();
    match path.as_str() {
        "/status500" => (StatusCode::INTERNAL_SERVER_ERROR, jwks).into_response(),
        "/redirect" => (StatusCode::FOUND, [(header::LOCATION, "/jwks")]).into_response(),
        "/big" => {
            let padding = "x".repeat(70 * 1024);
            let body = jwks.replacen('{', &format!("{{\"padding\":\"{padding}\","), 1);
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        "/notjson" => "<html>hello</html>".into_response(),
        p if p.starts_with("/jwks") || p.starts_with("/evil") => {
            ([(header::CONTENT_TYPE, "application/jwk-set+json")], jwks).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Configurations

fn config(issuers: Vec<TrustedIssuer>) -> AuthConfig {
    let mut config = AuthConfig::new(issuers);
    config.allow_insecure_loopback_http = true;
    config
}

/// [`ISS`] with its keys at `jwks_url`.
fn url_issuer(jwks_url: &str) -> TrustedIssuer {
    let mut issuer = TrustedIssuer::new(ISS);
    issuer.jwks_url = Some(jwks_url.parse().unwrap());
    issuer
}

/// [`ISS`] with `jku` allowed under `prefix`.
fn jku_issuer(prefix: &str) -> TrustedIssuer {
    let mut issuer = TrustedIssuer::new(ISS);
    issuer.jku_allow = vec![prefix.parse().unwrap()];
    issuer
}

/// An issuer with the TEST-ONLY RSA JWK Set as a static file.
fn rsa_file_issuer(iss: &str) -> TrustedIssuer {
    let mut issuer = TrustedIssuer::new(iss);
    issuer.jwks_file = Some(fixture("test-only-rsa-2048-jwks.json"));
    issuer
}

fn rs384(claims: &Value) -> String {
    sign(
        &header("RS384", RSA_KID),
        claims,
        &rsa_private(),
        Algorithm::RS384,
    )
}

/// A verifier trusting [`ISS`] through the RSA key file: no network at all.
fn static_verifier() -> Verifier {
    Verifier::new(config(vec![rsa_file_issuer(ISS)])).unwrap()
}

async fn rejection(verifier: &Verifier, token: &str) -> Rejection {
    verifier.verify(token, AUD).await.unwrap_err()
}

// ---------------------------------------------------------------------------------------------
// Accept paths

#[tokio::test]
async fn accepts_es384_with_keys_from_a_jwks_url_served_over_http() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = Verifier::new(config(vec![url_issuer(&server.url("/jwks"))])).unwrap();

    let c = claims_with(json!({"sub": "legacy-client-id", "tenant": "hospital-a"}));
    let client = verifier.verify(&es384(&key, &c), AUD).await.unwrap();
    assert_eq!(client.iss, ISS);
    assert_eq!(client.jti, c["jti"].as_str().unwrap());
    assert_eq!(client.sub.as_deref(), Some("legacy-client-id"));
    assert_eq!(client.tenant.as_deref(), Some("hospital-a"));
    assert_eq!(client.exp.timestamp(), c["exp"].as_i64().unwrap());
    assert_eq!(client.iat.timestamp(), c["iat"].as_i64().unwrap());
    assert_eq!(server.hits("/jwks"), 1);

    // The set is cached: a second token costs no fetch.
    verifier.verify(&es384(&key, &claims()), AUD).await.unwrap();
    assert_eq!(server.hits("/jwks"), 1);
}

/// Readiness: `jwks_pending` names a `jwks_url` until its set is loaded; `load_jwks` loads it
/// once (a failed load leaves it pending; static files and `jku` prefixes are never pending),
/// and the loaded set then serves tokens with no further fetch.
#[tokio::test]
async fn load_jwks_warms_the_cache_and_jwks_pending_says_what_is_missing() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    let mut failing = url_issuer(&server.url("/status500"));
    failing.iss = "https://ehr-failing.example.org".into();
    let verifier = Verifier::new(config(vec![
        url_issuer(&server.url("/jwks")),
        failing,
        rsa_file_issuer("https://ehr-static.example.org"),
        {
            let mut issuer = jku_issuer(&server.url("/jwks/"));
            issuer.iss = "https://ehr-jku.example.org".into();
            issuer
        },
    ]))
    .unwrap();
    let as_text = |urls: Vec<url::Url>| urls.iter().map(|u| u.to_string()).collect::<Vec<_>>();
    assert_eq!(
        as_text(verifier.jwks_pending()),
        [server.url("/jwks"), server.url("/status500")]
    );

    assert_eq!(
        as_text(verifier.load_jwks().await),
        [server.url("/status500")]
    );
    assert_eq!(as_text(verifier.jwks_pending()), [server.url("/status500")]);
    assert_eq!(server.hits("/jwks"), 1);
    assert_eq!(server.hits("/status500"), 1);

    // Loading again fetches only what is still pending.
    verifier.load_jwks().await;
    assert_eq!(server.hits("/jwks"), 1);
    assert_eq!(server.hits("/status500"), 2);

    verifier.verify(&es384(&key, &claims()), AUD).await.unwrap();
    assert_eq!(server.hits("/jwks"), 1, "the warmed set serves the token");
}

#[tokio::test]
async fn accepts_es384_with_an_allow_listed_jku() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = Verifier::new(config(vec![jku_issuer(&server.url("/jwks/"))])).unwrap();
    let jku = server.url("/jwks/tenant-a.json");
    let client = verifier
        .verify(&es384_jku(&key, &jku, &claims()), AUD)
        .await
        .unwrap();
    assert_eq!(client.iss, ISS);
    assert_eq!(server.hits("/jwks/tenant-a.json"), 1);
}

#[tokio::test]
async fn accepts_rs384_with_keys_from_a_static_jwks_file() {
    let verifier = static_verifier();
    let client = verifier.verify(&rs384(&claims()), AUD).await.unwrap();
    assert_eq!(client.iss, ISS);
    assert_eq!(client.sub, None);
    assert_eq!(client.tenant, None);
}

#[tokio::test]
async fn accepts_aud_arrays_a_trailing_slash_and_either_feedback_audience() {
    let verifier = static_verifier();
    let array = claims_with(json!({"aud": ["https://other.example.org/x", AUD]}));
    verifier.verify(&rs384(&array), AUD).await.unwrap();
    let slash = claims_with(json!({"aud": format!("{AUD}/")}));
    verifier.verify(&rs384(&slash), AUD).await.unwrap();

    let feedback = format!("{AUD}/feedback");
    for aud in [AUD, feedback.as_str()] {
        let token = rs384(&claims_with(json!({ "aud": aud })));
        verifier
            .verify_any_audience(&token, &[&feedback, AUD])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn accepts_times_within_the_clock_skew() {
    let verifier = static_verifier();
    let now = now();
    // Expired 30 s ago and issued 30 s "in the future": both within the 60 s skew.
    let c = claims_with(json!({"iat": now + 30, "exp": now - 30 + 300, "nbf": now + 30}));
    verifier.verify(&rs384(&c), AUD).await.unwrap();
    let c = claims_with(json!({"iat": now - 330, "exp": now - 30}));
    verifier.verify(&rs384(&c), AUD).await.unwrap();
    // Fractional NumericDates are allowed by RFC 7519.
    let c = claims_with(json!({"iat": now as f64 + 0.5, "exp": now as f64 + 300.25}));
    verifier.verify(&rs384(&c), AUD).await.unwrap();
}

#[tokio::test]
async fn accepts_es256_and_rs256_only_when_opted_in() {
    // ES256: a P-256 key, made now.
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let point = secret.public_key().to_encoded_point(false);
    let p256_jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "p256",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
    });
    // RS256: the TEST-ONLY RSA key without its `"alg": "RS384"` (a key's own alg binds it).
    let mut rsa_jwk: Value =
        serde_json::from_slice(&std::fs::read(fixture("test-only-rsa-2048-jwks.json")).unwrap())
            .unwrap();
    rsa_jwk["keys"][0].as_object_mut().unwrap().remove("alg");
    let keys = temp_file(
        "jwks.json",
        &json!({"keys": [p256_jwk, rsa_jwk["keys"][0]]}),
    );
    let mut issuer = TrustedIssuer::new(ISS);
    issuer.jwks_file = Some(keys.clone());
    let defaults = Verifier::new(config(vec![issuer.clone()])).unwrap();
    issuer.algorithms = vec![JwtAlgorithm::ES256, JwtAlgorithm::RS256];
    let opted_in = Verifier::new(config(vec![issuer])).unwrap();

    let es256 = sign(
        &header("ES256", "p256"),
        &claims(),
        &EncodingKey::from_ec_der(secret.to_pkcs8_der().unwrap().as_bytes()),
        Algorithm::ES256,
    );
    let rs256 = sign(
        &header("RS256", RSA_KID),
        &claims(),
        &rsa_private(),
        Algorithm::RS256,
    );
    for token in [&es256, &rs256] {
        opted_in.verify(token, AUD).await.unwrap();
        assert_eq!(
            rejection(&defaults, token).await,
            Rejection::AlgorithmNotAllowed
        );
    }
    // RS384 is off for the opted-in issuer (it lists its algorithms in full).
    assert_eq!(
        rejection(&opted_in, &rs384(&claims())).await,
        Rejection::AlgorithmNotAllowed
    );
    // The fixture's key says `"alg": "RS384"`: it cannot verify RS256 even when allowed.
    let mut bound = rsa_file_issuer(ISS);
    bound.algorithms = vec![JwtAlgorithm::RS256];
    let bound = Verifier::new(config(vec![bound])).unwrap();
    assert_eq!(
        rejection(&bound, &rs256).await,
        Rejection::KeyAlgorithmMismatch
    );
    let _ = std::fs::remove_dir_all(keys.parent().unwrap());
}

// ---------------------------------------------------------------------------------------------
// Algorithms

#[tokio::test]
async fn rejects_alg_none() {
    let verifier = static_verifier();
    for alg in ["none", "None", "NONE"] {
        let input = signing_input(&header(alg, RSA_KID), &claims());
        for token in [format!("{input}."), format!("{input}.c2ln")] {
            assert_eq!(rejection(&verifier, &token).await, Rejection::AlgorithmNone);
        }
    }
}

#[tokio::test]
async fn rejects_hs256_signed_with_the_public_key_as_secret() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = Verifier::new(config(vec![url_issuer(&server.url("/jwks"))])).unwrap();
    let jwk_text = key.jwk.to_string();
    let rsa_jwks = std::fs::read(fixture("test-only-rsa-2048-jwks.json")).unwrap();
    for (alg, algorithm) in [
        ("HS256", Algorithm::HS256),
        ("HS384", Algorithm::HS384),
        ("HS512", Algorithm::HS512),
    ] {
        for secret in [&key.public_sec1[..], jwk_text.as_bytes(), &rsa_jwks[..]] {
            let token = sign(
                &header(alg, &key.kid),
                &claims(),
                &EncodingKey::from_secret(secret),
                algorithm,
            );
            assert_eq!(
                rejection(&verifier, &token).await,
                Rejection::SymmetricAlgorithm
            );
        }
    }
    // Refused on the header alone: no key was even fetched.
    assert_eq!(server.total_hits(), 0);
}

#[tokio::test]
async fn rejects_algorithms_not_allowed_for_the_issuer() {
    let verifier = static_verifier();
    // ES256 and RS256 are opt-in; PS384, RS512, ES512 and EdDSA are never supported.
    for alg in [
        "ES256", "RS256", "PS384", "RS512", "ES512", "EdDSA", "rs384",
    ] {
        let token = sign(
            &header(alg, RSA_KID),
            &claims(),
            &rsa_private(),
            Algorithm::RS384,
        );
        assert_eq!(
            rejection(&verifier, &token).await,
            Rejection::AlgorithmNotAllowed,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn rejects_a_kid_naming_a_key_of_another_type() {
    // The kid names the RSA key, the token claims ES384 (signed with an EC key).
    let verifier = static_verifier();
    let ec = ec_key(RSA_KID);
    assert_eq!(
        rejection(&verifier, &es384(&ec, &claims())).await,
        Rejection::KeyAlgorithmMismatch
    );
}

// ---------------------------------------------------------------------------------------------
// Header

#[tokio::test]
async fn rejects_bad_typ_missing_kid_and_crit() {
    let verifier = static_verifier();
    let key = rsa_private();
    let cases = [
        (json!({"alg": "RS384", "kid": RSA_KID}), Rejection::BadType),
        (
            json!({"alg": "RS384", "kid": RSA_KID, "typ": "at+jwt"}),
            Rejection::BadType,
        ),
        (json!({"alg": "RS384", "typ": "JWT"}), Rejection::MissingKid),
        (
            json!({"alg": "RS384", "typ": "JWT", "kid": ""}),
            Rejection::MissingKid,
        ),
        (
            json!({"alg": "RS384", "typ": "JWT", "kid": RSA_KID, "crit": ["exp"], "exp": 1}),
            Rejection::CriticalHeader,
        ),
    ];
    for (h, expected) in cases {
        let token = sign(&h, &claims(), &key, Algorithm::RS384);
        assert_eq!(rejection(&verifier, &token).await, expected, "{h}");
    }
    // typ is case-insensitive (RFC 7515 §4.1.9).
    let h = json!({"alg": "RS384", "kid": RSA_KID, "typ": "jwt"});
    verifier
        .verify(&sign(&h, &claims(), &key, Algorithm::RS384), AUD)
        .await
        .unwrap();
}

#[tokio::test]
async fn rejects_malformed_tokens() {
    let verifier = static_verifier();
    let good = rs384(&claims());
    let (input, signature) = good.rsplit_once('.').unwrap();
    let (h, p) = input.split_once('.').unwrap();
    let cases = [
        String::new(),
        "not a jwt".into(),
        "a.b".into(),
        format!("{good}.extra"),
        format!(".{p}.{signature}"),
        format!("{h}..{signature}"),
        format!("{h}!.{p}.{signature}"),
        format!("{h}==.{p}.{signature}"),
        format!("{}.{p}.{signature}", b64("not json")),
        format!("{h}.{}.{signature}", b64("[1,2]")),
        format!("{h}.{}.{signature}", b64(r#"{"iss": 7}"#)),
        format!("{h}.{}.{signature}", b64(r#"{"exp": "tomorrow"}"#)),
        format!("{h}.{}.{signature}", b64(r#"{"iss":"a","iss":"b"}"#)),
        rs384(&claims_with(json!({ "jti": "j".repeat(256) }))),
        // A NUL cannot be a replay-store key (PostgreSQL text): malformed, not "store down".
        rs384(&claims_with(json!({ "jti": "a\u{0}b" }))),
    ];
    for token in &cases {
        assert_eq!(
            rejection(&verifier, token).await,
            Rejection::Malformed,
            "{token}"
        );
    }
    let huge = format!("{h}.{}.{signature}", b64("x".repeat(20_000)));
    assert_eq!(rejection(&verifier, &huge).await, Rejection::TooLarge);
}

// ---------------------------------------------------------------------------------------------
// Issuer, audience, times, jti, tenant

#[tokio::test]
async fn rejects_unknown_and_missing_issuer() {
    let verifier = static_verifier();
    for iss in [
        json!("https://evil.example.org"),
        json!(format!("{ISS}/")),
        json!(""),
    ] {
        let token = rs384(&claims_with(json!({ "iss": iss })));
        assert_eq!(rejection(&verifier, &token).await, Rejection::UnknownIssuer);
    }
    let token = rs384(&claims_with(json!({ "iss": null })));
    assert_eq!(rejection(&verifier, &token).await, Rejection::MissingIssuer);
}

#[tokio::test]
async fn rejects_wrong_or_missing_audience() {
    let verifier = static_verifier();
    for aud in [
        json!("https://cds.example.org/cds-services/other-service"),
        json!("https://cds.example.org/cds-services"),
        json!(format!("{AUD}/feedback")),
        json!("http://cds.example.org/cds-services/lrt-consult"),
        json!(["https://a.example.org", "https://b.example.org"]),
        json!([]),
    ] {
        let token = rs384(&claims_with(json!({ "aud": aud })));
        assert_eq!(
            rejection(&verifier, &token).await,
            Rejection::WrongAudience,
            "{aud}"
        );
    }
    let token = rs384(&claims_with(json!({ "aud": null })));
    assert_eq!(
        rejection(&verifier, &token).await,
        Rejection::MissingAudience
    );
}

#[tokio::test]
async fn rejects_expired_tokens_and_missing_exp() {
    let verifier = static_verifier();
    let now = now();
    let token = rs384(&claims_with(json!({"iat": now - 400, "exp": now - 100})));
    assert_eq!(rejection(&verifier, &token).await, Rejection::Expired);
    let token = rs384(&claims_with(json!({"iat": now - 360, "exp": now - 60})));
    assert_eq!(rejection(&verifier, &token).await, Rejection::Expired);
    let token = rs384(&claims_with(json!({ "exp": null })));
    assert_eq!(rejection(&verifier, &token).await, Rejection::MissingExpiry);
}

#[tokio::test]
async fn rejects_iat_in_the_future_missing_iat_and_future_nbf() {
    let verifier = static_verifier();
    let now = now();
    let token = rs384(&claims_with(json!({"iat": now + 120, "exp": now + 300})));
    assert_eq!(
        rejection(&verifier, &token).await,
        Rejection::IssuedInFuture
    );
    let token = rs384(&claims_with(json!({ "iat": null })));
    assert_eq!(
        rejection(&verifier, &token).await,
        Rejection::MissingIssuedAt
    );
    let token = rs384(&claims_with(json!({ "nbf": now + 120 })));
    assert_eq!(rejection(&verifier, &token).await, Rejection::NotYetValid);
}

#[tokio::test]
async fn rejects_lifetimes_over_the_maximum() {
    let verifier = static_verifier();
    let now = now();
    // Default maximum: one hour.
    let token = rs384(&claims_with(json!({"iat": now, "exp": now + 3601})));
    assert_eq!(
        rejection(&verifier, &token).await,
        Rejection::LifetimeTooLong
    );
    let token = rs384(&claims_with(json!({"iat": now, "exp": now + 3600})));
    verifier.verify(&token, AUD).await.unwrap();
    let token = rs384(&claims_with(json!({"iat": now + 50, "exp": now + 40})));
    assert_eq!(
        rejection(&verifier, &token).await,
        Rejection::LifetimeTooLong
    );
}

#[tokio::test]
async fn rejects_missing_or_empty_jti() {
    let verifier = static_verifier();
    for jti in [Value::Null, json!("")] {
        let token = rs384(&claims_with(json!({ "jti": jti })));
        assert_eq!(rejection(&verifier, &token).await, Rejection::MissingJti);
    }
}

#[tokio::test]
async fn rejects_tenants_not_on_the_allow_list() {
    let mut issuer = rsa_file_issuer(ISS);
    issuer.tenants = Some(vec!["hospital-a".into(), "hospital-b".into()]);
    let verifier = Verifier::new(config(vec![issuer])).unwrap();
    let token = rs384(&claims_with(json!({"tenant": "hospital-c"})));
    assert_eq!(
        rejection(&verifier, &token).await,
        Rejection::TenantNotAllowed
    );
    let token = rs384(&claims_with(json!({"tenant": "Hospital-A"})));
    assert_eq!(
        rejection(&verifier, &token).await,
        Rejection::TenantNotAllowed
    );
    let token = rs384(&claims());
    assert_eq!(rejection(&verifier, &token).await, Rejection::MissingTenant);
    let token = rs384(&claims_with(json!({"tenant": "hospital-b"})));
    let client = verifier.verify(&token, AUD).await.unwrap();
    assert_eq!(client.tenant.as_deref(), Some("hospital-b"));
}

// ---------------------------------------------------------------------------------------------
// Replay

#[tokio::test]
async fn rejects_a_replayed_jti() {
    let verifier = Verifier::new(config(vec![
        rsa_file_issuer(ISS),
        rsa_file_issuer("https://other-ehr.example.org"),
    ]))
    .unwrap();
    let store = MemoryReplayStore::default();
    let c = claims();
    let token = rs384(&c);
    verifier
        .verify_and_record(&token, AUD, &store)
        .await
        .unwrap();
    assert_eq!(
        verifier
            .verify_and_record(&token, AUD, &store)
            .await
            .unwrap_err(),
        Rejection::Replayed
    );
    // A different token re-using the jti is a replay too.
    let again = rs384(&claims_with(json!({ "jti": c["jti"] })));
    assert_eq!(
        verifier
            .verify_and_record(&again, AUD, &store)
            .await
            .unwrap_err(),
        Rejection::Replayed
    );
    // The same jti from another issuer is another token.
    let other = rs384(&claims_with(
        json!({"jti": c["jti"], "iss": "https://other-ehr.example.org"}),
    ));
    verifier
        .verify_and_record(&other, AUD, &store)
        .await
        .unwrap();
    // Through `dyn ReplayStore`, as a server would hold it.
    let shared: Arc<dyn lrt_auth::ReplayStore> = Arc::new(MemoryReplayStore::default());
    let fresh = rs384(&claims());
    verifier
        .verify_and_record(&fresh, AUD, &shared)
        .await
        .unwrap();
    assert_eq!(
        verifier
            .verify_and_record(&fresh, AUD, &*shared)
            .await
            .unwrap_err(),
        Rejection::Replayed
    );
}

#[tokio::test]
async fn a_failing_replay_store_fails_closed() {
    let verifier = static_verifier();
    let full = MemoryReplayStore::new(0);
    assert_eq!(
        verifier
            .verify_and_record(&rs384(&claims()), AUD, &full)
            .await
            .unwrap_err(),
        Rejection::ReplayStoreUnavailable
    );
}

// ---------------------------------------------------------------------------------------------
// Signatures

#[tokio::test]
async fn rejects_bad_signatures() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = Verifier::new(config(vec![url_issuer(&server.url("/jwks"))])).unwrap();

    // Signed by another key under the trusted kid.
    let impostor = ec_key("ehr-key-1");
    assert_eq!(
        rejection(&verifier, &es384(&impostor, &claims())).await,
        Rejection::BadSignature
    );

    // A genuine signature over other claims (payload swapped: a different jti).
    let genuine = es384(&key, &claims());
    let (input, signature) = genuine.rsplit_once('.').unwrap();
    let (h, _) = input.split_once('.').unwrap();
    let forged = format!("{h}.{}.{signature}", b64(claims().to_string()));
    assert_eq!(rejection(&verifier, &forged).await, Rejection::BadSignature);

    // Truncated, empty and garbage signatures.
    for sig in [&signature[..signature.len() - 4], "", "AAAA", "!!!!"] {
        let token = format!("{input}.{sig}");
        assert_eq!(rejection(&verifier, &token).await, Rejection::BadSignature);
    }

    // The RSA path too.
    let rsa = rs384(&claims());
    let tampered = format!("{}.{}", rsa.rsplit_once('.').unwrap().0, signature);
    assert_eq!(
        rejection(&static_verifier(), &tampered).await,
        Rejection::BadSignature
    );
    verifier.verify(&genuine, AUD).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// jku and key sets

#[tokio::test]
async fn rejects_a_jku_not_on_the_allow_list_without_fetching_it() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = Verifier::new(config(vec![jku_issuer(&server.url("/jwks/"))])).unwrap();
    let other_port = format!("http://127.0.0.1:1/jwks/{}", "keys.json");
    let traversal = server.url("/jwks/../evil/keys.json");
    let encoded = server.url("/jwks/%2e%2e/evil/keys.json");
    let query = server.url("/jwks/keys.json?x=1");
    // `/evil/...` on the same server serves the real key set: the token is refused anyway,
    // because the URL is not allowed, and the server must not see a single request.
    for jku in [
        server.url("/evil/keys.json"),
        server.url("/jwks"),
        server.url("/jwksx/keys.json"),
        traversal,
        encoded,
        query,
        other_port,
        "https://attacker.example.net/jwks/keys.json".into(),
        "file:///etc/passwd".into(),
        "not a url".into(),
    ] {
        let token = es384_jku(&key, &jku, &claims());
        assert_eq!(
            rejection(&verifier, &token).await,
            Rejection::JkuNotAllowed,
            "{jku}"
        );
    }
    assert_eq!(server.total_hits(), 0);

    // An issuer with only a static key file still refuses any jku.
    let token = es384_jku(&key, &server.url("/jwks/a"), &claims());
    assert_eq!(
        rejection(&static_verifier(), &token).await,
        Rejection::JkuNotAllowed
    );
    assert_eq!(server.total_hits(), 0);
}

/// Issue 8: the reference CDS Hooks sandbox signs ES384 with a `jku` header. With the issuer's
/// key in its configured key file, the token is verified with that key, and the `jku` (not on
/// any allow list, and unreachable offline) is neither fetched nor trusted. An unknown `kid`
/// with the same `jku` is still refused.
#[tokio::test]
async fn a_kid_of_the_configured_key_file_wins_over_any_jku() {
    let key = ec_key("sandbox-es384");
    let server = JwksServer::start(&[&key]).await;
    let keys = temp_file("sandbox-jwks.json", &json!({"keys": [key.jwk.clone()]}));
    let mut issuer = TrustedIssuer::new(ISS);
    issuer.jwks_file = Some(keys);
    let verifier = Verifier::new(config(vec![issuer])).unwrap();
    // The sandbox's own jku, and one on a reachable server: neither is fetched.
    for jku in [
        "https://sandbox.cds-hooks.org/.well-known/jwks.json".to_string(),
        server.url("/jwks/keys.json"),
    ] {
        let client = verifier
            .verify(&es384_jku(&key, &jku, &claims()), AUD)
            .await
            .unwrap_or_else(|e| panic!("{jku}: {e:?}"));
        assert_eq!(client.iss, ISS);
    }
    assert_eq!(server.total_hits(), 0, "no jku was fetched");
    let stranger = ec_key("not-in-the-file");
    let token = es384_jku(
        &stranger,
        "https://sandbox.cds-hooks.org/.well-known/jwks.json",
        &claims(),
    );
    assert_eq!(rejection(&verifier, &token).await, Rejection::JkuNotAllowed);
}

#[tokio::test]
async fn an_issuer_with_only_a_jku_allow_list_needs_a_jku() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = Verifier::new(config(vec![jku_issuer(&server.url("/jwks/"))])).unwrap();
    assert_eq!(
        rejection(&verifier, &es384(&key, &claims())).await,
        Rejection::NoKeySource
    );
}

#[tokio::test]
async fn unknown_kid_refetches_the_set_then_rejects() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    let mut config = config(vec![url_issuer(&server.url("/jwks"))]);
    config.jwks.min_refresh_interval_secs = 0;
    let verifier = Verifier::new(config).unwrap();

    verifier.verify(&es384(&key, &claims()), AUD).await.unwrap();
    assert_eq!(server.hits("/jwks"), 1);

    // An unknown kid: one refetch, then refused.
    let stranger = ec_key("ehr-key-unknown");
    assert_eq!(
        rejection(&verifier, &es384(&stranger, &claims())).await,
        Rejection::UnknownKid
    );
    assert_eq!(server.hits("/jwks"), 2);

    // Key rotation: once the client publishes its new key, the refetch finds it.
    let rotated = ec_key("ehr-key-2");
    server.set_keys(&[&key, &rotated]);
    verifier
        .verify(&es384(&rotated, &claims()), AUD)
        .await
        .unwrap();
    assert_eq!(server.hits("/jwks"), 3);
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    // Default: at most one fetch of a URL per 30 s.
    let verifier = Verifier::new(config(vec![url_issuer(&server.url("/jwks"))])).unwrap();
    verifier.verify(&es384(&key, &claims()), AUD).await.unwrap();
    for i in 0..20 {
        let stranger = ec_key(&format!("made-up-{i}"));
        assert_eq!(
            rejection(&verifier, &es384(&stranger, &claims())).await,
            Rejection::UnknownKid
        );
    }
    assert_eq!(server.hits("/jwks"), 1);
    // The known key still works meanwhile.
    verifier.verify(&es384(&key, &claims()), AUD).await.unwrap();
}

#[tokio::test]
async fn concurrent_requests_share_one_fetch() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = Arc::new(Verifier::new(config(vec![url_issuer(&server.url("/jwks"))])).unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let verifier = verifier.clone();
            let token = es384(&key, &claims());
            tokio::spawn(async move { verifier.verify(&token, AUD).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(server.hits("/jwks"), 1);
}

#[tokio::test]
async fn many_allow_listed_jku_urls_are_bounded_by_the_fetch_budget() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    let mut config = config(vec![jku_issuer(&server.url("/jwks/"))]);
    config.jwks.max_fetches_per_minute = 3;
    let verifier = Verifier::new(config).unwrap();
    let stranger = ec_key("made-up");
    let mut seen = Vec::new();
    for i in 0..10 {
        let jku = server.url(&format!("/jwks/variant-{i}"));
        seen.push(rejection(&verifier, &es384_jku(&stranger, &jku, &claims())).await);
    }
    assert_eq!(server.total_hits(), 3);
    assert_eq!(seen[..3], [Rejection::UnknownKid; 3]);
    assert_eq!(seen[3..], [Rejection::KeySetUnavailable; 7]);
}

/// Issue 8 item 7: forged tokens cycling allow-listed `jku` variants spend the issuer's budget
/// for new URLs, but a key rotated in at the URL the EHR has always used is still fetched.
#[tokio::test]
async fn forged_jku_variants_cannot_block_a_key_rotation_at_a_known_url() {
    let key1 = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key1]).await;
    let mut config = config(vec![jku_issuer(&server.url("/jwks/"))]);
    config.jwks.max_fetches_per_minute = 3;
    config.jwks.min_refresh_interval_secs = 0;
    let verifier = Verifier::new(config).unwrap();
    let main = server.url("/jwks/main");
    verifier
        .verify(&es384_jku(&key1, &main, &claims()), AUD)
        .await
        .unwrap();
    let stranger = ec_key("made-up");
    for i in 0..10 {
        let jku = server.url(&format!("/jwks/variant-{i}"));
        rejection(&verifier, &es384_jku(&stranger, &jku, &claims())).await;
    }
    let variants: usize = (0..10)
        .map(|i| server.hits(&format!("/jwks/variant-{i}")))
        .sum();
    assert_eq!(
        variants, 2,
        "the issuer's budget (3, one spent on /jwks/main) bounds new URLs"
    );
    let key2 = ec_key("ehr-key-2");
    server.set_keys(&[&key1, &key2]);
    verifier
        .verify(&es384_jku(&key2, &main, &claims()), AUD)
        .await
        .unwrap();
    assert_eq!(server.hits("/jwks/main"), 2);
}

#[tokio::test]
async fn unavailable_key_sets_are_rejected() {
    let key = ec_key("ehr-key-1");
    let server = JwksServer::start(&[&key]).await;
    for path in ["/status500", "/redirect", "/big", "/notjson", "/missing"] {
        let verifier = Verifier::new(config(vec![url_issuer(&server.url(path))])).unwrap();
        assert_eq!(
            rejection(&verifier, &es384(&key, &claims())).await,
            Rejection::KeySetUnavailable,
            "{path}"
        );
        assert_eq!(server.hits(path), 1, "{path}");
    }
    // The redirect was not followed.
    assert_eq!(server.hits("/jwks"), 0);

    // Nothing listening (port 1 on loopback): refused, not hung.
    let verifier = Verifier::new(config(vec![url_issuer("http://127.0.0.1:1/jwks")])).unwrap();
    assert_eq!(
        rejection(&verifier, &es384(&key, &claims())).await,
        Rejection::KeySetUnavailable
    );
}

#[tokio::test]
async fn the_dev_mode_key_file_is_trusted_only_when_configured() {
    let key = ec_key("dev-key");
    let dev_file = temp_file("dev-jwks.json", &json!({"keys": [key.jwk]}));
    let token = es384(&key, &claims());

    let off = static_verifier();
    assert!(!off.dev_mode());
    assert_eq!(rejection(&off, &token).await, Rejection::UnknownKid);

    let mut on = config(vec![rsa_file_issuer(ISS)]);
    on.dev_mode_key_file = Some(dev_file.clone());
    let on = Verifier::new(on).unwrap();
    assert!(on.dev_mode());
    on.verify(&token, AUD).await.unwrap();
    // Dev keys do not relax anything else.
    let wrong_aud = es384(&key, &claims_with(json!({"aud": "https://elsewhere"})));
    assert_eq!(rejection(&on, &wrong_aud).await, Rejection::WrongAudience);
    let _ = std::fs::remove_dir_all(dev_file.parent().unwrap());
}

// ---------------------------------------------------------------------------------------------
// Configuration and hygiene

#[test]
fn configuration_deserialises_with_safe_defaults() {
    let config: AuthConfig = serde_json::from_value(json!({
        "issuers": [
            {"iss": "https://sandbox.cds-hooks.org",
             "jku_allow": ["https://sandbox.cds-hooks.org/.well-known/jwks.json"]},
            {"iss": "https://ehr.example.org", "jwks_url": "https://ehr.example.org/jwks",
             "algorithms": ["ES384", "ES256"], "tenants": ["hospital-a"]}
        ]
    }))
    .unwrap();
    assert_eq!(config.clock_skew_secs, 60);
    assert_eq!(config.max_token_lifetime_secs, 3600);
    assert_eq!(config.dev_mode_key_file, None);
    assert!(!config.allow_insecure_loopback_http);
    assert_eq!(config.jwks.min_refresh_interval_secs, 30);
    assert_eq!(
        config.issuers[0].algorithms,
        [JwtAlgorithm::ES384, JwtAlgorithm::RS384]
    );
    assert_eq!(
        config.issuers[1].tenants.as_deref(),
        Some(&["hospital-a".to_string()][..])
    );
    let verifier = Verifier::new(config).unwrap();
    assert!(!verifier.dev_mode());

    // Symmetric algorithms and `none` cannot even be configured; typos are errors.
    for bad in [
        json!({"issuers": [{"iss": "a", "jwks_url": "https://a/j", "algorithms": ["HS256"]}]}),
        json!({"issuers": [{"iss": "a", "jwks_url": "https://a/j", "algorithms": ["none"]}]}),
        json!({"issuers": [{"iss": "a", "jwks_url": "https://a/j", "tenant": ["x"]}]}),
        json!({"issuers": [], "clock_skew": 60}),
        json!({"issuers": [{"iss": "a", "jwks_url": "not a url"}]}),
    ] {
        assert!(
            serde_json::from_value::<AuthConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn unsafe_configurations_are_refused() {
    let build = |issuers: Vec<TrustedIssuer>, loopback: bool| {
        let mut c = AuthConfig::new(issuers);
        c.allow_insecure_loopback_http = loopback;
        Verifier::new(c).map(|_| ())
    };
    let with_url = |url: &str| {
        let mut i = TrustedIssuer::new(ISS);
        i.jwks_url = Some(url.parse().unwrap());
        i
    };
    let with_jku = |url: &str| {
        let mut i = TrustedIssuer::new(ISS);
        i.jku_allow = vec![url.parse().unwrap()];
        i
    };
    assert!(matches!(build(vec![], false), Err(ConfigError::NoIssuers)));
    assert!(matches!(
        build(vec![TrustedIssuer::new(ISS)], false),
        Err(ConfigError::NoKeySource { .. })
    ));
    for issuer in [
        with_url("http://ehr.example.org/jwks"),
        with_url("http://127.0.0.1:8080/jwks"),
        with_jku("http://ehr.example.org/jwks/"),
        with_jku("https://user:pw@ehr.example.org/jwks/"),
        with_jku("https://ehr.example.org/jwks/#frag"),
    ] {
        assert!(matches!(
            build(vec![issuer], false),
            Err(ConfigError::InsecureUrl { .. })
        ));
    }
    // Loopback http only with the test switch, and never for other hosts.
    assert!(build(vec![with_url("http://127.0.0.1:8080/jwks")], true).is_ok());
    assert!(matches!(
        build(vec![with_url("http://192.168.1.10/jwks")], true),
        Err(ConfigError::InsecureUrl { .. })
    ));
    assert!(matches!(
        build(
            vec![with_url("https://a/j"), with_url("https://b/j")],
            false
        ),
        Err(ConfigError::DuplicateIssuer { .. })
    ));
    let mut no_tenant = with_url("https://a/j");
    no_tenant.tenants = Some(vec![]);
    assert!(matches!(
        build(vec![no_tenant], false),
        Err(ConfigError::EmptyTenants { .. })
    ));
    let mut no_alg = with_url("https://a/j");
    no_alg.algorithms = vec![];
    assert!(matches!(
        build(vec![no_alg], false),
        Err(ConfigError::NoAlgorithms { .. })
    ));
    let mut missing_file = TrustedIssuer::new(ISS);
    missing_file.jwks_file = Some(fixture("does-not-exist.json"));
    assert!(matches!(
        build(vec![missing_file], false),
        Err(ConfigError::KeyFile { .. })
    ));
    // A key file with no usable key (the private PEM is not a JWK Set).
    let mut not_jwks = TrustedIssuer::new(ISS);
    not_jwks.jwks_file = Some(fixture("test-only-rsa-2048-private.pem"));
    assert!(matches!(
        build(vec![not_jwks], false),
        Err(ConfigError::KeyFile { .. })
    ));
}

#[tokio::test]
async fn rejections_carry_no_token_content() {
    let verifier = static_verifier();
    let token = rs384(&claims_with(
        json!({"aud": "https://secret-aud.example", "jti": "secret-jti"}),
    ));
    let e = rejection(&verifier, &token).await;
    assert_eq!(e, Rejection::WrongAudience);
    assert_eq!(e.reason(), "wrong_audience");
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains(&token[..20]), "{text}");
    }
}

#[test]
fn the_verifier_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Verifier>();
    shareable::<MemoryReplayStore>();
}
