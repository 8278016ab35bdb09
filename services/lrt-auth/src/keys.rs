//! Public keys: JWK Set parsing and signature verification.
//!
//! A JWK Set is parsed key by key, and a key this service cannot or must not use is skipped
//! rather than failing the whole set (EHRs publish encryption keys and other key types in the
//! same set). A key is kept only if it is:
//! * `kty` `EC` with `crv` `P-256` or `P-384` and coordinates of the curve's size, or `kty`
//!   `RSA` with a modulus of 2048 to 4096 bits;
//! * for signatures: `use` absent or `sig`, `key_ops` absent or containing `verify`, `alg`
//!   absent or one of ES256, ES384, RS256, RS384;
//! * identified by a non-empty `kid` (the JWT's `kid` is mandatory, R182).
//!
//! Symmetric (`oct`) keys are never kept, so no configuration or JWK Set can make an HMAC
//! secret out of a public key. Private members (`d`, ...) are ignored.
//!
//! The signature itself is checked by `aws-lc-rs` (also the TLS provider of the service), whose
//! P-384 (s2n-bignum's assembly) is several times faster than the pure-Rust RustCrypto
//! arithmetic that `jsonwebtoken`'s default backend used, and than ring's: that check was 36 %
//! of the service's CPU under load (issue 9; `cargo bench -p lrt-auth` compares them). When a key set is loaded, EC
//! points are validated once with RustCrypto (`p256`/`p384`), so a point off the curve is
//! skipped with the other unusable keys instead of failing every token.

use std::collections::HashMap;

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::config::JwtAlgorithm;

/// What a key is, for matching it with a JWS `alg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    P256,
    P384,
    Rsa,
}

/// The public key material, as `aws-lc-rs` reads it.
#[derive(Clone)]
enum Material {
    /// An uncompressed SEC1 point: `04 || x || y`.
    Ec(Vec<u8>),
    /// Big-endian modulus and exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// One usable public key.
#[derive(Clone)]
pub(crate) struct VerificationKey {
    key_type: KeyType,
    /// The key's own `alg`, when it names one.
    alg: Option<JwtAlgorithm>,
    key: Material,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("key_type", &self.key_type)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// Whether this key can verify `alg`.
    pub fn supports(&self, alg: JwtAlgorithm) -> bool {
        let type_fits = matches!(
            (self.key_type, alg),
            (KeyType::P256, JwtAlgorithm::ES256)
                | (KeyType::P384, JwtAlgorithm::ES384)
                | (KeyType::Rsa, JwtAlgorithm::RS256 | JwtAlgorithm::RS384)
        );
        type_fits && self.alg.is_none_or(|own| own == alg)
    }

    /// Whether `signature` (base64url) is a valid `alg` signature of `signing_input`.
    pub fn verify(&self, signing_input: &str, signature: &str, alg: JwtAlgorithm) -> bool {
        if !self.supports(alg) {
            return false;
        }
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let message = signing_input.as_bytes();
        match (&self.key, alg) {
            (Material::Ec(point), JwtAlgorithm::ES256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, &signature)
                    .is_ok()
            }
            (Material::Ec(point), JwtAlgorithm::ES384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, &signature)
                    .is_ok()
            }
            (Material::Rsa { n, e }, JwtAlgorithm::RS256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, &signature)
                .is_ok(),
            (Material::Rsa { n, e }, JwtAlgorithm::RS384) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA384, message, &signature)
                .is_ok(),
            _ => false,
        }
    }
}

/// The members of a JWK looked at (RFC 7517 §4, RFC 7518 §6).
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// The key of one JWK with its `kid`, or `None` if it is not a usable signature key.
fn parse_jwk(value: serde_json::Value) -> Option<(String, VerificationKey)> {
    let raw: RawJwk = serde_json::from_value(value).ok()?;
    let kid = raw.kid.filter(|k| !k.is_empty())?;
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return None;
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(name) => Some(JwtAlgorithm::from_name(name)?),
    };
    let (key_type, key) = match raw.kty.as_str() {
        "EC" => {
            let (key_type, size) = match raw.crv.as_deref()? {
                "P-256" => (KeyType::P256, 32),
                "P-384" => (KeyType::P384, 48),
                _ => return None,
            };
            let (x, y) = (
                URL_SAFE_NO_PAD.decode(raw.x?).ok()?,
                URL_SAFE_NO_PAD.decode(raw.y?).ok()?,
            );
            if x.len() != size || y.len() != size {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            // A point off the curve is not a key: skipped now, not a failure on every token.
            let on_curve = match key_type {
                KeyType::P256 => p256::PublicKey::from_sec1_bytes(&point).is_ok(),
                _ => p384::PublicKey::from_sec1_bytes(&point).is_ok(),
            };
            if !on_curve {
                return None;
            }
            (key_type, Material::Ec(point))
        }
        "RSA" => {
            let modulus = URL_SAFE_NO_PAD.decode(raw.n?).ok()?;
            let exponent = URL_SAFE_NO_PAD.decode(raw.e?).ok()?;
            let first = modulus.iter().position(|&b| b != 0)?;
            let n = modulus[first..].to_vec();
            let bits = n.len() * 8 - n[0].leading_zeros() as usize;
            if !(2048..=4096).contains(&bits) {
                return None;
            }
            // A public exponent as the usual verifiers accept it (ring's rule, kept): odd, at least 3,
            // at most 33 bits.
            let e: Vec<u8> = exponent.iter().copied().skip_while(|&b| b == 0).collect();
            let e_bits = e
                .first()
                .map_or(0, |b| e.len() * 8 - b.leading_zeros() as usize);
            if e.last().is_none_or(|b| b % 2 == 0) || e == [1] || e_bits > 33 {
                return None;
            }
            (KeyType::Rsa, Material::Rsa { n, e })
        }
        _ => return None,
    };
    Some((kid, VerificationKey { key_type, alg, key }))
}

/// A JWK Set: the usable keys by `kid`. A `kid` may (against the spec's advice) name several
/// keys; all of them are tried.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Vec<VerificationKey>>,
}

#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWK Set document. Errors only if it is not `{"keys": [...]}`; unusable keys are
    /// skipped (see the module docs), so the set may be empty.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        let raw: RawJwkSet = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a JWK Set ({{\"keys\": [...]}}): {e}"))?;
        let mut by_kid: HashMap<String, Vec<VerificationKey>> = HashMap::new();
        for (kid, key) in raw.keys.into_iter().filter_map(parse_jwk) {
            by_kid.entry(kid).or_default().push(key);
        }
        Ok(KeySet { by_kid })
    }

    /// The keys with this `kid` (empty if none).
    pub fn get(&self, kid: &str) -> &[VerificationKey] {
        self.by_kid.get(kid).map_or(&[], Vec::as_slice)
    }

    /// Whether there is a key with this `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.by_kid.values().map(Vec::len).sum()
    }
}

/// Reads a JWK Set file; it must hold at least one usable key.
pub(crate) fn read_key_file(path: &std::path::Path) -> Result<KeySet, crate::ConfigError> {
    let error = |reason: String| crate::ConfigError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let set = KeySet::parse(&bytes).map_err(error)?;
    if set.len() == 0 {
        return Err(error(
            "no usable signature key (EC P-256/P-384 or RSA 2048-4096 bits, with a kid)".into(),
        ));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const X: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn skips_symmetric_encryption_and_malformed_keys() {
        let set = json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "short", "crv": "P-384", "x": "AAAA", "y": "AAAA"},
            {"kty": "EC", "kid": "offcurve", "crv": "P-384", "x": X, "y": X},
            {"kty": "EC", "kid": "secp", "crv": "secp256k1", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA"},
            {"kty": "EC", "crv": "P-384", "x": X, "y": X},
            "not an object"
        ]});
        let set = KeySet::parse(set.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 0);
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{\"keys\": {}}").is_err());
    }
}
