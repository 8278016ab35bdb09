//! # lrt-auth
//!
//! Authentication of CDS clients on CDS Hooks 2.0 calls (`#trusting-cds-clients`): the client
//! sends `Authorization: Bearer <jwt>`, a JWT signed with its private key, and the service
//! verifies it against the client's published JWK Set before doing anything else. Any failure
//! is a bare `401 Unauthorized`; the reason exists only for metrics.
//!
//! This crate has no HTTP server and no database: the server extracts the token
//! ([`bearer_token`]), computes the expected audience from its configured public URL, calls
//! [`Verifier::verify_and_record`] with a [`ReplayStore`], and maps a [`Rejection`] to 401.
//!
//! * [`config`]: trusted issuers (`iss`, `jku` allow list, JWK Set URL or file, algorithms,
//!   tenants) and limits, deserialised from the service's configuration file;
//! * [`verifier`]: the checks, in the cds-hooks best-practice order;
//! * [`rejection`]: one variant per reason, with a metrics label;
//! * [`replay`]: the `jti` replay store trait and an in-memory store;
//! * [`assertion`]: a person's signed identity as an identity-aware proxy or an OpenID Connect
//!   provider asserts it (the quality dashboard), checked with the same keys and JWK Set cache;
//! * `keys` and `jwks` (private): JWK parsing, and fetching and caching remote JWK Sets
//!   (allow-listed URLs only, size- and time-limited, rate-limited refresh on unknown `kid`).
//!
//! Signatures are checked by `jsonwebtoken` with its RustCrypto backend; JWK Sets are fetched
//! with reqwest over rustls (aws-lc-rs provider). No token, claim value or key appears in an error
//! message. The crate logs (with `tracing`) only JWK Set fetch failures and skipped refreshes
//! (with the allow-listed URL) and replay store failures, never a token.
//!
//! ```no_run
//! # async fn example(config: lrt_auth::AuthConfig, header: &str) -> Result<(), lrt_auth::Rejection> {
//! use lrt_auth::{MemoryReplayStore, Verifier, bearer_token};
//!
//! let verifier = Verifier::new(config).expect("valid auth configuration");
//! let replay = MemoryReplayStore::default();
//! let token = bearer_token(header).ok_or(lrt_auth::Rejection::Missing)?;
//! let client = verifier
//!     .verify_and_record(token, "https://cds.example.org/cds-services/lrt-consult", &replay)
//!     .await?;
//! println!("call from {} (tenant {:?}, jti {})", client.iss, client.tenant, client.jti);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod assertion;
pub mod config;
#[cfg(feature = "dev-signer")]
pub mod dev;
mod jwks;
mod keys;
pub mod rejection;
pub mod replay;
mod token;
pub mod verifier;

pub use assertion::{Assertion, AssertionConfig, AssertionVerifier};
pub use config::{AuthConfig, ConfigError, JwksConfig, JwtAlgorithm, TrustedIssuer};
pub use rejection::Rejection;
pub use replay::{FirstUse, MemoryReplayStore, ReplayStore, StoreError};
pub use token::bearer_token;
pub use verifier::{VerifiedClient, Verifier};

/// The current time (chrono's `clock` feature is not enabled in this workspace).
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    std::time::SystemTime::now().into()
}
