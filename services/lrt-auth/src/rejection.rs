//! Why a token was refused.
//!
//! Every reason is its own variant with a fixed, short label ([`Rejection::reason`]) for metrics
//! and logs ("JWT rejections by reason"). Neither the messages nor the labels contain anything
//! taken from the token or from the request: per the cds-hooks best practices the service
//! answers every rejection with the same bare `401 Unauthorized`, and the token itself is never
//! logged. The caller may log the label next to what it trusts (`iss`, `tenant`, `jti` of an
//! accepted token), never the token.

/// A refused token. All variants mean "answer 401"; they differ only for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No token was given (no `Authorization: Bearer` header). For the caller's use; the
    /// verifier itself never returns it.
    #[error("no bearer token")]
    Missing,
    /// Longer than the limit (16 KiB) before any parsing.
    #[error("token too large")]
    TooLarge,
    /// Not a compact JWS of three base64url parts with JSON header and claims, or a claim of
    /// the wrong JSON type, or an out-of-range time, or a `jti` over 255 bytes or holding NUL.
    #[error("malformed token")]
    Malformed,
    /// `alg` is `none` (R201).
    #[error("unsigned token (alg none)")]
    AlgorithmNone,
    /// `alg` is a symmetric algorithm such as HS256 (R203); this also stops the
    /// public-key-as-HMAC-secret confusion attack.
    #[error("symmetric algorithm")]
    SymmetricAlgorithm,
    /// `alg` is not one the issuer is configured for.
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The `typ` header is missing or is not `JWT` (R183).
    #[error("wrong or missing typ header")]
    BadType,
    /// A `crit` header: no JWS extension is understood here (RFC 7515 §4.1.11).
    #[error("unsupported critical header")]
    CriticalHeader,
    /// No `kid` header (R182).
    #[error("missing kid")]
    MissingKid,
    /// No `iss` claim.
    #[error("missing iss")]
    MissingIssuer,
    /// `iss` is not a trusted issuer.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// No `aud` claim.
    #[error("missing aud")]
    MissingAudience,
    /// `aud` is not (and does not contain) the URL of the endpoint being invoked.
    #[error("wrong audience")]
    WrongAudience,
    /// No `exp` claim.
    #[error("missing exp")]
    MissingExpiry,
    /// `exp` has passed (beyond the clock skew).
    #[error("expired")]
    Expired,
    /// No `iat` claim.
    #[error("missing iat")]
    MissingIssuedAt,
    /// `iat` is in the future (beyond the clock skew).
    #[error("issued in the future")]
    IssuedInFuture,
    /// `nbf` is in the future (beyond the clock skew).
    #[error("not yet valid")]
    NotYetValid,
    /// `exp - iat` is longer than the configured maximum lifetime, or negative.
    #[error("lifetime too long")]
    LifetimeTooLong,
    /// No (or an empty) `jti` claim.
    #[error("missing jti")]
    MissingJti,
    /// The issuer has a tenant allow list and the token has no `tenant`.
    #[error("missing tenant")]
    MissingTenant,
    /// `tenant` is not on the issuer's allow list.
    #[error("tenant not allowed")]
    TenantNotAllowed,
    /// `jku` is not on the issuer's allow list (or is not an acceptable URL). It was not
    /// fetched.
    #[error("jku not allowed")]
    JkuNotAllowed,
    /// No `jku` and the issuer has no other key source.
    #[error("no key source for this token")]
    NoKeySource,
    /// The JWK Set could not be fetched (network, status, size, content) and no usable cached
    /// copy exists.
    #[error("key set unavailable")]
    KeySetUnavailable,
    /// No key with this `kid`, even after a (rate-limited) refresh of the key set.
    #[error("unknown kid")]
    UnknownKid,
    /// The key with this `kid` cannot verify this `alg` (wrong key type, curve, or the key's
    /// own `alg`).
    #[error("key does not match algorithm")]
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// This `jti` was already used by this issuer.
    #[error("replayed jti")]
    Replayed,
    /// The replay store failed; the token is refused (fail closed).
    #[error("replay store unavailable")]
    ReplayStoreUnavailable,
}

impl Rejection {
    /// A stable `snake_case` label for metrics, e.g. `"wrong_audience"`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Missing => "missing_token",
            Rejection::TooLarge => "token_too_large",
            Rejection::Malformed => "malformed",
            Rejection::AlgorithmNone => "alg_none",
            Rejection::SymmetricAlgorithm => "alg_symmetric",
            Rejection::AlgorithmNotAllowed => "alg_not_allowed",
            Rejection::BadType => "bad_typ",
            Rejection::CriticalHeader => "crit_header",
            Rejection::MissingKid => "missing_kid",
            Rejection::MissingIssuer => "missing_iss",
            Rejection::UnknownIssuer => "unknown_issuer",
            Rejection::MissingAudience => "missing_aud",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::MissingExpiry => "missing_exp",
            Rejection::Expired => "expired",
            Rejection::MissingIssuedAt => "missing_iat",
            Rejection::IssuedInFuture => "iat_in_future",
            Rejection::NotYetValid => "nbf_in_future",
            Rejection::LifetimeTooLong => "lifetime_too_long",
            Rejection::MissingJti => "missing_jti",
            Rejection::MissingTenant => "missing_tenant",
            Rejection::TenantNotAllowed => "tenant_not_allowed",
            Rejection::JkuNotAllowed => "jku_not_allowed",
            Rejection::NoKeySource => "no_key_source",
            Rejection::KeySetUnavailable => "jwks_unavailable",
            Rejection::UnknownKid => "unknown_kid",
            Rejection::KeyAlgorithmMismatch => "key_alg_mismatch",
            Rejection::BadSignature => "bad_signature",
            Rejection::Replayed => "replayed",
            Rejection::ReplayStoreUnavailable => "replay_store_unavailable",
        }
    }

    /// Every variant, e.g. to pre-register one metrics counter per reason.
    pub const ALL: [Rejection; 30] = [
        Rejection::Missing,
        Rejection::TooLarge,
        Rejection::Malformed,
        Rejection::AlgorithmNone,
        Rejection::SymmetricAlgorithm,
        Rejection::AlgorithmNotAllowed,
        Rejection::BadType,
        Rejection::CriticalHeader,
        Rejection::MissingKid,
        Rejection::MissingIssuer,
        Rejection::UnknownIssuer,
        Rejection::MissingAudience,
        Rejection::WrongAudience,
        Rejection::MissingExpiry,
        Rejection::Expired,
        Rejection::MissingIssuedAt,
        Rejection::IssuedInFuture,
        Rejection::NotYetValid,
        Rejection::LifetimeTooLong,
        Rejection::MissingJti,
        Rejection::MissingTenant,
        Rejection::TenantNotAllowed,
        Rejection::JkuNotAllowed,
        Rejection::NoKeySource,
        Rejection::KeySetUnavailable,
        Rejection::UnknownKid,
        Rejection::KeyAlgorithmMismatch,
        Rejection::BadSignature,
        Rejection::Replayed,
        Rejection::ReplayStoreUnavailable,
    ];
}

#[cfg(test)]
mod tests {
    use super::Rejection;
    use std::collections::HashSet;

    #[test]
    fn labels_are_distinct_and_all_is_complete() {
        let labels: HashSet<&str> = Rejection::ALL.iter().map(Rejection::reason).collect();
        assert_eq!(labels.len(), Rejection::ALL.len());
        // (A new variant must be added to `ALL` by hand; `reason` is checked by the compiler.)
        for label in labels {
            assert!(
                label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
            );
        }
    }
}
