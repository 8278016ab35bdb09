//! `cargo bench -p lrt-auth`: the signature check of a CDS client's ES384 JWT, as the service
//! does it (aws-lc-rs, inside `Verifier::verify`, claims included) and as `jsonwebtoken`'s RustCrypto
//! backend did it before issue 9 (signature only). The JWT check was 36 % of the service's CPU
//! under load with RustCrypto.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lrt_auth::dev::DevSigner;
use lrt_auth::{AuthConfig, TrustedIssuer, Verifier};

const ISS: &str = "https://ehr.bench.example";
const AUD: &str = "https://lrt.bench.example/cds-services/lrt-patient-view";

fn signature(c: &mut Criterion) {
    let signer = DevSigner::new(ISS, "bench-key");
    let dir = tempfile_dir();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, signer.jwks().to_string()).expect("the JWKS file is written");
    let mut issuer = TrustedIssuer::new(ISS);
    issuer.jwks_file = Some(jwks);
    let verifier = Verifier::new(AuthConfig::new(vec![issuer])).expect("a verifier");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let token = signer.token(AUD);
    runtime
        .block_on(verifier.verify(&token, AUD))
        .expect("the bench token verifies");

    c.bench_function("es384_verify_whole_token", |b| {
        b.iter(|| runtime.block_on(verifier.verify(black_box(&token), AUD)))
    });

    // The same signature through jsonwebtoken's RustCrypto backend.
    let jwk = &signer.jwks()["keys"][0];
    let key = jsonwebtoken::DecodingKey::from_ec_components(
        jwk["x"].as_str().expect("x"),
        jwk["y"].as_str().expect("y"),
    )
    .expect("an EC key");
    let (input, sig) = token.rsplit_once('.').expect("a JWS");
    assert!(
        jsonwebtoken::crypto::verify(sig, input.as_bytes(), &key, jsonwebtoken::Algorithm::ES384)
            .expect("verifiable")
    );
    c.bench_function("es384_verify_rustcrypto_signature_only", |b| {
        b.iter(|| {
            jsonwebtoken::crypto::verify(
                black_box(sig),
                input.as_bytes(),
                &key,
                jsonwebtoken::Algorithm::ES384,
            )
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lrt-auth-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

criterion_group!(benches, signature);
criterion_main!(benches);
