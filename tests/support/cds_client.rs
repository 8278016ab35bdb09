//! A CDS client for the tests: signs CDS Hooks JWTs with its own ES384 key (P-384, made at
//! test time) and publishes the public key as a JWK Set from a real local HTTP server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};

pub struct CdsClient {
    key: SigningKey,
    pub kid: String,
    pub iss: String,
}

impl CdsClient {
    pub fn new(iss: &str) -> CdsClient {
        CdsClient {
            key: SigningKey::random(&mut rand_core::OsRng),
            kid: format!("test-{}", uuid::Uuid::new_v4().simple()),
            iss: iss.to_string(),
        }
    }

    /// The public key as a JWK Set.
    pub fn jwks(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({"keys": [{
            "kty": "EC", "crv": "P-384", "use": "sig", "alg": "ES384", "kid": self.kid,
            "x": B64.encode(point.x().expect("x")),
            "y": B64.encode(point.y().expect("y")),
        }]})
    }

    /// The standard header and claims for `aud`, valid for 5 minutes, a fresh `jti`.
    pub fn claims(&self, aud: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": self.iss, "aud": aud, "iat": now, "exp": now + 300,
               "jti": uuid::Uuid::new_v4().to_string()})
    }

    pub fn header(&self) -> Value {
        json!({"alg": "ES384", "typ": "JWT", "kid": self.kid})
    }

    /// A token for `aud`.
    pub fn token(&self, aud: &str) -> String {
        self.sign(&self.header(), &self.claims(aud))
    }

    /// A token with this header and these claims, signed ES384 with the client's key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature.to_bytes()))
    }
}

/// A JWK Set served at `http://127.0.0.1:<port>/jwks.json`; counts the fetches.
pub struct JwksServer {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(jwks: Value) -> JwksServer {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let router = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let counter = counter.clone();
                let jwks = jwks.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    axum::Json(jwks)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        JwksServer {
            url: format!("http://{addr}/jwks.json"),
            hits,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
