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

/// A CDS client of one issuer with its own JWK Set server, and the `tenant` it puts in its
/// tokens (None: no `tenant` claim): the callers of the multi-tenant tests.
pub struct TenantCaller {
    pub client: CdsClient,
    pub jwks: JwksServer,
    pub tenant: Option<&'static str>,
}

impl TenantCaller {
    pub async fn new(iss: &str, tenant: Option<&'static str>) -> TenantCaller {
        let client = CdsClient::new(iss);
        let jwks = JwksServer::start(client.jwks()).await;
        TenantCaller {
            client,
            jwks,
            tenant,
        }
    }

    /// The trusted issuer of the service's `[auth]` for this caller.
    pub fn issuer(&self) -> lrt_auth::TrustedIssuer {
        let mut issuer = lrt_auth::TrustedIssuer::new(self.client.iss.clone());
        issuer.jwks_url = Some(self.jwks.url.parse().expect("a JWKS URL"));
        issuer
    }

    /// A fresh token for `aud`, with the caller's tenant.
    pub fn token(&self, aud: &str) -> String {
        let mut claims = self.client.claims(aud);
        if let Some(t) = self.tenant {
            claims["tenant"] = serde_json::json!(t);
        }
        self.client.sign(&self.client.header(), &claims)
    }
}
