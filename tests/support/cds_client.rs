//! A CDS client for the tests: signs CDS Hooks JWTs with its own ES384 key (P-384, made at
//! test time, `lrt_auth::dev`) and publishes the public key as a JWK Set from a real local HTTP
//! server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lrt_auth::dev::DevSigner;
use serde_json::Value;

/// The test CDS client: [`DevSigner`] with a random `kid`.
pub struct CdsClient {
    signer: DevSigner,
    pub kid: String,
    pub iss: String,
}

impl CdsClient {
    pub fn new(iss: &str) -> CdsClient {
        let kid = format!("test-{}", uuid::Uuid::new_v4().simple());
        CdsClient {
            signer: DevSigner::new(iss, &kid),
            kid,
            iss: iss.to_string(),
        }
    }

    /// The public key as a JWK Set.
    pub fn jwks(&self) -> Value {
        self.signer.jwks()
    }

    /// The standard claims for `aud`, valid for 5 minutes, a fresh `jti`.
    pub fn claims(&self, aud: &str) -> Value {
        self.signer.claims(aud, 300)
    }

    pub fn header(&self) -> Value {
        self.signer.header()
    }

    /// A token for `aud`.
    pub fn token(&self, aud: &str) -> String {
        self.signer.token(aud)
    }

    /// A token with this header and these claims, signed ES384 with the client's key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.signer.sign(header, claims)
    }
}

/// A JWK Set served at `http://127.0.0.1:<port>/jwks.json`; counts the fetches.
pub struct JwksServer {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(jwks: Value) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        JwksServer::start_on(listener, jwks)
    }

    /// The server on a given listener (e.g. an address chosen before the server is up).
    pub fn start_on(listener: tokio::net::TcpListener, jwks: Value) -> JwksServer {
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
