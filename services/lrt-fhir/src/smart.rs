//! SMART Backend Services: the service's own, system-level access to the EHR's FHIR server
//! (HL7 SMART App Launch 2.x, "Backend Services"), as EHRs expect it instead of a static token.
//!
//! The client authenticates with a signed JWT assertion (`private_key_jwt`: ES384 or RS384,
//! `iss` = `sub` = the client id, `aud` = the token endpoint, a fresh `jti`, `exp` five minutes
//! ahead) in an OAuth 2.0 `client_credentials` request for the configured scopes. The access
//! token is cached and shared by every request until shortly before it expires; a 401 from the
//! FHIR server drops it and the request is made once more with a new one. The token endpoint is
//! configured, or read from the server's `.well-known/smart-configuration`.
//!
//! Neither the private key nor a token is ever printed (`Debug` redacts; errors name the
//! endpoint and the OAuth error code, never a secret).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA384, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// How long a client assertion is valid (the specification's maximum is five minutes).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// A cached token is renewed this long before it expires (or at 80 % of a shorter lifetime).
const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// Why the service could not get an access token.
#[derive(Debug, thiserror::Error)]
pub enum SmartError {
    #[error("SMART backend key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("SMART token endpoint {url}: {message}")]
    Token { url: String, message: String },
    #[error("SMART configuration {url}: {message}")]
    Discovery { url: String, message: String },
}

/// The signature algorithm of the client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Algorithm {
    ES384,
    RS384,
}

enum KeyPair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The client's private key (PKCS#8) and its `kid` as registered with the EHR.
pub struct SigningKey {
    pair: KeyPair,
    algorithm: Algorithm,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// A key from PKCS#8 DER (`-----BEGIN PRIVATE KEY-----` once PEM-decoded): P-384 for ES384,
    /// RSA (2048 bits or more) for RS384.
    pub fn from_pkcs8(der: &[u8], algorithm: Algorithm, kid: &str) -> Result<SigningKey, String> {
        let pair = match algorithm {
            Algorithm::ES384 => EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der)
                .map(KeyPair::Ec)
                .map_err(|e| format!("not a PKCS#8 P-384 private key for ES384 ({e})"))?,
            Algorithm::RS384 => RsaKeyPair::from_pkcs8(der)
                .map(KeyPair::Rsa)
                .map_err(|e| format!("not a PKCS#8 RSA private key for RS384 ({e})"))?,
        };
        if kid.is_empty() {
            return Err("the key id (kid) is empty".into());
        }
        Ok(SigningKey {
            pair,
            algorithm,
            kid: kid.to_string(),
        })
    }

    /// A key from a PEM file holding one `PRIVATE KEY` (PKCS#8).
    pub fn from_pem_file(
        path: &std::path::Path,
        algorithm: Algorithm,
        kid: &str,
    ) -> Result<SigningKey, SmartError> {
        let bad = |reason: String| SmartError::Key {
            path: path.display().to_string(),
            reason,
        };
        let der = PrivatePkcs8KeyDer::from_pem_file(path)
            .map_err(|e| bad(format!("no PKCS#8 PEM private key ({e})")))?;
        SigningKey::from_pkcs8(der.secret_pkcs8_der(), algorithm, kid).map_err(bad)
    }

    /// A compact JWS of `claims`, signed with this key.
    fn sign(&self, claims: &serde_json::Value) -> Result<String, String> {
        let header = serde_json::json!({
            "alg": match self.algorithm { Algorithm::ES384 => "ES384", Algorithm::RS384 => "RS384" },
            "kid": self.kid,
            "typ": "JWT",
        });
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            KeyPair::Ec(pair) => pair
                .sign(&rng, input.as_bytes())
                .map_err(|_| "ES384 signing failed".to_string())?
                .as_ref()
                .to_vec(),
            KeyPair::Rsa(pair) => {
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA384, &rng, input.as_bytes(), &mut out)
                    .map_err(|_| "RS384 signing failed".to_string())?;
                out
            }
        };
        Ok(format!("{input}.{}", B64.encode(signature)))
    }
}

/// What the service registered with the EHR's authorization server.
#[derive(Debug)]
pub struct BackendAuthConfig {
    pub client_id: String,
    /// The token endpoint; None: read from `{fhir base}/.well-known/smart-configuration`.
    pub token_url: Option<Url>,
    /// Space-separated SMART scopes (e.g. `system/Patient.rs system/Observation.rs`).
    pub scope: String,
    pub key: SigningKey,
}

struct Cached {
    token: SecretString,
    renew_at: Instant,
}

/// Access tokens for one client at one authorization server, cached and shared.
pub struct BackendAuth {
    config: BackendAuthConfig,
    /// The token endpoint once known (configured or discovered).
    endpoint: tokio::sync::OnceCell<Url>,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for BackendAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendAuth")
            .field("client_id", &self.config.client_id)
            .field(
                "token_url",
                &self.config.token_url.as_ref().map(Url::as_str),
            )
            .field("scope", &self.config.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

impl BackendAuth {
    pub fn new(config: BackendAuthConfig) -> Arc<BackendAuth> {
        Arc::new(BackendAuth {
            config,
            endpoint: tokio::sync::OnceCell::new(),
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one from the token endpoint. Concurrent
    /// callers wait for one request rather than each making their own.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        fhir_base: &Url,
    ) -> Result<SecretString, SmartError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let endpoint = self.endpoint(http, fhir_base).await?;
        let fresh = self.request(http, &endpoint).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token (the FHIR server refused it): the next request gets a new one.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn endpoint(&self, http: &reqwest::Client, fhir_base: &Url) -> Result<Url, SmartError> {
        if let Some(url) = &self.config.token_url {
            return Ok(url.clone());
        }
        self.endpoint
            .get_or_try_init(|| discover(http, fhir_base))
            .await
            .cloned()
    }

    async fn request(&self, http: &reqwest::Client, endpoint: &Url) -> Result<Cached, SmartError> {
        let fail = |message: String| SmartError::Token {
            url: endpoint.to_string(),
            message,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = serde_json::json!({
            "iss": self.config.client_id,
            "sub": self.config.client_id,
            "aud": endpoint.as_str(),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
            "jti": random_id(),
        });
        let assertion = self.config.key.sign(&claims).map_err(fail)?;
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", self.config.scope.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        let body = form_body(&form);
        let asked = Instant::now();
        let response = http
            .post(endpoint.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                fail(format!(
                    "not reachable ({})",
                    crate::client::transport_message(e)
                ))
            })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            fail(format!(
                "no complete answer ({})",
                crate::client::transport_message(e)
            ))
        })?;
        if !status.is_success() {
            let reason = serde_json::from_str::<OAuthError>(&text)
                .map(|e| match e.error_description {
                    Some(d) => format!("{}: {d}", e.error),
                    None => e.error,
                })
                .unwrap_or_else(|_| "no OAuth error in the answer".into());
            return Err(fail(format!("HTTP {} ({reason})", status.as_u16())));
        }
        let answer: TokenResponse =
            serde_json::from_str(&text).map_err(|e| fail(format!("not a token response ({e})")))?;
        if !answer.token_type.eq_ignore_ascii_case("bearer") {
            return Err(fail(format!(
                "token_type {:?}, expected bearer",
                answer.token_type
            )));
        }
        if answer.access_token.is_empty() {
            return Err(fail("an empty access_token".into()));
        }
        // SMART requires expires_in; without it the token is used for five minutes at most.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(300));
        let margin = RENEW_MARGIN.min(lifetime / 5);
        Ok(Cached {
            token: SecretString::from(answer.access_token),
            renew_at: asked + lifetime.saturating_sub(margin),
        })
    }
}

/// The token endpoint from `{base}.well-known/smart-configuration`.
async fn discover(http: &reqwest::Client, fhir_base: &Url) -> Result<Url, SmartError> {
    let url = fhir_base
        .join(".well-known/smart-configuration")
        .map_err(|e| SmartError::Discovery {
            url: fhir_base.to_string(),
            message: e.to_string(),
        })?;
    let fail = |message: String| SmartError::Discovery {
        url: url.to_string(),
        message,
    };
    let response = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fail(crate::client::transport_message(e)))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status().as_u16())));
    }
    let text = response
        .text()
        .await
        .map_err(|e| fail(crate::client::transport_message(e)))?;
    let document: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not JSON ({e})")))?;
    let endpoint = document["token_endpoint"]
        .as_str()
        .ok_or_else(|| fail("no token_endpoint".into()))?;
    let endpoint = Url::parse(endpoint).map_err(|e| fail(format!("token_endpoint: {e}")))?;
    if endpoint.scheme() != "https" && !endpoint.host_str().is_some_and(is_loopback) {
        return Err(fail(format!(
            "token_endpoint {endpoint} is not https (the client assertion would travel in clear)"
        )));
    }
    Ok(endpoint)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `application/x-www-form-urlencoded` of name-value pairs.
fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// 128 random bits as hex (the assertion's `jti`).
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
