//! **Development and tests only** (feature `dev-signer`): a CDS client's side of the JWT
//! exchange. Makes an ES384 key pair, publishes its public key as a JWK Set and signs CDS Hooks
//! JWTs with it. `lrt demo` uses it to act as the EHR; the end-to-end tests use it as their CDS
//! client. A production service never signs client tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};

/// A CDS client with its own ES384 (P-384) key, made at construction.
pub struct DevSigner {
    key: SigningKey,
    pub kid: String,
    pub iss: String,
}

impl DevSigner {
    pub fn new(iss: &str, kid: &str) -> DevSigner {
        DevSigner {
            key: SigningKey::random(&mut rand_core::OsRng),
            kid: kid.to_string(),
            iss: iss.to_string(),
        }
    }

    /// The signer of a private JWK as [`DevSigner::private_jwk`] writes it (EC P-384 with `d`
    /// and `kid`), issuing tokens as `iss`.
    pub fn from_private_jwk(jwk: &Value, iss: &str) -> Result<DevSigner, String> {
        if jwk["kty"] != "EC" || jwk["crv"] != "P-384" {
            return Err("not an EC P-384 key (kty \"EC\", crv \"P-384\")".into());
        }
        let d = jwk["d"]
            .as_str()
            .ok_or("no private key member \"d\"")
            .and_then(|d| B64.decode(d).map_err(|_| "\"d\" is not base64url"))?;
        let key = SigningKey::from_slice(&d).map_err(|_| "\"d\" is not a P-384 private key")?;
        let kid = jwk["kid"].as_str().ok_or("no \"kid\"")?;
        Ok(DevSigner {
            key,
            kid: kid.to_string(),
            iss: iss.to_string(),
        })
    }

    /// The public key as a JWK Set (`{"keys": [...]}`).
    pub fn jwks(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({"keys": [{
            "kty": "EC", "crv": "P-384", "use": "sig", "alg": "ES384", "kid": self.kid,
            "x": B64.encode(point.x().expect("an uncompressed point has x")),
            "y": B64.encode(point.y().expect("an uncompressed point has y")),
        }]})
    }

    /// The private key as a JWK (the public members and `d`), for a test client in another
    /// language (the Python hook of the schema-driven run signs its tokens with it).
    pub fn private_jwk(&self) -> Value {
        let mut jwk = self.jwks()["keys"][0].clone();
        jwk["d"] = json!(B64.encode(self.key.to_bytes()));
        jwk
    }

    /// The JWT header: ES384, `typ` JWT, this key's `kid`.
    pub fn header(&self) -> Value {
        json!({"alg": "ES384", "typ": "JWT", "kid": self.kid})
    }

    /// Claims for `aud`, issued now, valid `lifetime_s` seconds, with a fresh `jti`.
    pub fn claims(&self, aud: &str, lifetime_s: i64) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        json!({"iss": self.iss, "aud": aud, "iat": now, "exp": now + lifetime_s,
               "jti": uuid_v4()})
    }

    /// A token for `aud`, valid 5 minutes.
    pub fn token(&self, aud: &str) -> String {
        self.sign(&self.header(), &self.claims(aud, 300))
    }

    /// Signs any header and claims (tests use it to make invalid tokens too).
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

/// A random (version 4) UUID as text.
fn uuid_v4() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_private_jwk_holds_the_key_of_the_public_one() {
        let signer = DevSigner::new("https://ehr.example", "k1");
        let private = signer.private_jwk();
        let public = &signer.jwks()["keys"][0];
        for member in ["kty", "crv", "alg", "kid", "x", "y"] {
            assert_eq!(private[member], public[member], "{member}");
        }
        let d = B64
            .decode(private["d"].as_str().expect("d"))
            .expect("base64url");
        let key = SigningKey::from_slice(&d).expect("a P-384 scalar");
        let point = key.verifying_key().to_encoded_point(false);
        assert_eq!(public["x"], json!(B64.encode(point.x().expect("x"))));
        assert_eq!(public["y"], json!(B64.encode(point.y().expect("y"))));
    }

    #[test]
    fn a_signer_read_back_from_its_private_jwk_has_the_same_public_key() {
        let signer = DevSigner::new("https://ehr.example", "k1");
        let again = DevSigner::from_private_jwk(&signer.private_jwk(), "https://ehr.example")
            .expect("its own JWK");
        assert_eq!(again.jwks(), signer.jwks());
        let mut public_only = signer.jwks()["keys"][0].clone();
        assert!(DevSigner::from_private_jwk(&public_only, "x").is_err());
        public_only["d"] = json!("AAAA");
        assert!(DevSigner::from_private_jwk(&public_only, "x").is_err());
    }
}
