//! Splitting and decoding a compact JWS (`header.payload.signature`) **without** trusting it.
//!
//! Nothing here checks a signature: the [`crate::verifier`] uses the decoded header to pick a
//! key and the decoded claims for the cheap checks (issuer, audience, times) before the
//! signature is verified over the exact `header.payload` bytes received. Decoding is strict:
//! base64url without padding and with canonical trailing bits, JSON objects only, duplicate
//! member names refused (serde's derive rejects a repeated field), claims of the wrong JSON type
//! refused. Unknown header parameters and claims are ignored (CDS Hooks: "ignore unknown
//! claims").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::Rejection;

/// Tokens longer than this are refused before any decoding.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// `jti`s longer than this (in bytes) are refused, so replay stores can bound their keys.
pub(crate) const MAX_JTI_BYTES: usize = 255;

/// The JOSE header parameters looked at.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub jku: Option<String>,
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn values(&self) -> &[String] {
        match self {
            Audience::One(one) => std::slice::from_ref(one),
            Audience::Many(many) => many,
        }
    }
}

/// The claims looked at.
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<Audience>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub exp: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub iat: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
}

impl Claims {
    /// The RFC 7519 time checks at `now` with `skew` seconds of clock skew: `exp` and `iat`
    /// present, not expired, not issued in the future, not before `nbf`, `exp` not before `iat`.
    /// Answers `(exp, iat)`; a caller adds its own limit on the lifetime.
    pub(crate) fn checked_times(&self, now: i64, skew: i64) -> Result<(i64, i64), Rejection> {
        let exp = self.exp.ok_or(Rejection::MissingExpiry)?;
        if now >= exp + skew {
            return Err(Rejection::Expired);
        }
        let iat = self.iat.ok_or(Rejection::MissingIssuedAt)?;
        if iat > now + skew {
            return Err(Rejection::IssuedInFuture);
        }
        if self.nbf.is_some_and(|nbf| nbf > now + skew) {
            return Err(Rejection::NotYetValid);
        }
        if exp < iat {
            return Err(Rejection::LifetimeTooLong);
        }
        Ok((exp, iat))
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, possibly fractional (truncated
/// toward negative infinity here), within ±10^11 s so later arithmetic cannot overflow.
fn numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    const LIMIT: i64 = 100_000_000_000;
    let number: Option<serde_json::Number> = Option::deserialize(d)?;
    let Some(number) = number else {
        return Ok(None);
    };
    let seconds = if let Some(i) = number.as_i64() {
        Some(i)
    } else if let Some(f) = number.as_f64() {
        #[allow(clippy::cast_possible_truncation)]
        let floor = f.floor() as i64;
        (f.is_finite() && f.abs() < LIMIT as f64).then_some(floor)
    } else {
        None
    };
    match seconds {
        Some(s) if (-LIMIT..=LIMIT).contains(&s) => Ok(Some(s)),
        _ => Err(serde::de::Error::custom("NumericDate out of range")),
    }
}

/// A decoded, **unverified** token.
#[derive(Debug)]
pub(crate) struct Unverified<'a> {
    pub header: Header,
    pub claims: Claims,
    /// `header.payload`, exactly as received: what the signature covers.
    pub signing_input: &'a str,
    /// The base64url signature part.
    pub signature: &'a str,
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Rejection::Malformed)?;
    // A JOSE header and a claims set are JSON objects (serde would also map an array onto a
    // struct, positionally).
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(Rejection::Malformed);
    }
    serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)
}

/// Splits and decodes `token`.
pub(crate) fn decode(token: &str) -> Result<Unverified<'_>, Rejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    if header.is_empty() || payload.is_empty() {
        return Err(Rejection::Malformed);
    }
    let header: Header = decode_json(header)?;
    let claims: Claims = decode_json(payload)?;
    // A `jti` a replay store cannot key (too long, or holding NUL, which PostgreSQL refuses in
    // text) is a malformed token, not a store failure.
    if claims
        .jti
        .as_ref()
        .is_some_and(|j| j.len() > MAX_JTI_BYTES || j.contains('\0'))
    {
        return Err(Rejection::Malformed);
    }
    let signing_input = &token[..token.len() - signature.len() - 1];
    Ok(Unverified {
        header,
        claims,
        signing_input,
        signature,
    })
}

/// Every claim of `token` (already accepted by [`decode`]), as a JSON object: what an identity
/// assertion carries besides the registered claims (`email`, `groups`, a tenant claim…).
pub(crate) fn claims_object(
    token: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Rejection> {
    let payload = token.split('.').nth(1).ok_or(Rejection::Malformed)?;
    decode_json(payload)
}

/// Extracts the token from an `Authorization` header value: `Bearer <token>` (the scheme is
/// case-insensitive, RFC 9110 §11.1). `None` for any other scheme or an empty token.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty() && !token.contains(' ')).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn numeric_dates_accept_integers_and_fractions() {
        let t = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"ES384"}"#),
            b64(r#"{"exp":1700000000.9,"iat":1700000000,"aud":["a","b"]}"#)
        );
        let u = decode(&t).unwrap();
        assert_eq!(u.claims.exp, Some(1_700_000_000));
        assert_eq!(u.claims.iat, Some(1_700_000_000));
        assert_eq!(u.claims.aud.unwrap().values(), ["a", "b"]);
        assert_eq!(u.signing_input, t.rsplit_once('.').unwrap().0);
        assert_eq!(u.signature, "sig");
    }

    #[test]
    fn refuses_strings_huge_dates_duplicates_and_padding() {
        for payload in [
            r#"{"exp":"1700000000"}"#,
            r#"{"exp":1e300}"#,
            r#"{"exp":100000000001}"#,
            r#"{"iss":"a","iss":"b"}"#,
            r#"{"aud":7}"#,
            r#"[]"#,
            r#" ["a"]"#,
        ] {
            let t = format!("{}.{}.sig", b64(r#"{"alg":"ES384"}"#), b64(payload));
            assert_eq!(decode(&t).unwrap_err(), Rejection::Malformed, "{payload}");
        }
        let padded = format!("{}=.{}.sig", b64(r#"{"alg":"ES384"}"#), b64("{}"));
        assert_eq!(decode(&padded).unwrap_err(), Rejection::Malformed);
    }

    #[test]
    fn bearer_scheme() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
    }
}
