//! `make bench` (`cargo bench -p lrt-e2e --bench call`): one CDS Hooks call without I/O, as the
//! service does it: the ES384 JWT check, reading the body, resolving the prefetch (every key
//! present: nothing fetched), the snapshot, the engine under the active rule set, and the cards
//! serialised. On the median and the largest MIMIC-IV demo request of `../shared` (issue 9).

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use lrt_auth::dev::DevSigner;
use lrt_auth::{AuthConfig, TrustedIssuer, Verifier};
use lrt_e2e::hook_requests;
use lrt_engine::ruleset::index::RulesRoot;
use lrt_engine::testing::repo_root;
use lrt_hooks::cards::templates::CardText;
use lrt_hooks::cards::{CardInput, respond};
use lrt_hooks::model::HookRequest;
use lrt_hooks::orders::OrderCodes;
use lrt_hooks::prefetch::{PrefetchConfig, PrefetchPlan, resolve};

const ISS: &str = "https://ehr.bench.example";
const AUD: &str = "https://lrt.bench.example/cds-services/lrt-patient-view";

fn call(c: &mut Criterion) {
    let rules = RulesRoot::open(&repo_root().join("rules"))
        .and_then(|root| root.load_active())
        .expect("the active rule set");
    let plan = PrefetchPlan::new(&rules);
    let prefetch = PrefetchConfig::default();
    let text = CardText::for_rules(&rules).expect("card texts");
    let order_codes = OrderCodes::for_rules(&rules).expect("order codes");
    let dashboard: url::Url = "https://lrt.bench.example/".parse().expect("a URL");
    let service = lrt_hooks::services::find("lrt-patient-view").expect("the service");

    let signer = DevSigner::new(ISS, "bench-key");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, signer.jwks().to_string()).expect("the JWKS file");
    let mut issuer = TrustedIssuer::new(ISS);
    issuer.jwks_file = Some(jwks);
    let verifier = Verifier::new(AuthConfig::new(vec![issuer])).expect("a verifier");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");

    let mut bodies: Vec<Vec<u8>> = hook_requests()
        .into_iter()
        .map(|r| r.json.to_string().into_bytes())
        .collect();
    bodies.sort_by_key(Vec::len);
    let cases = [
        ("median", bodies[bodies.len() / 2].clone()),
        ("largest", bodies[bodies.len() - 1].clone()),
    ];
    let token = signer.token(AUD);

    let one_call = |body: &[u8]| {
        runtime
            .block_on(verifier.verify(&token, AUD))
            .expect("the token verifies");
        let request = HookRequest::from_slice(body).expect("a valid request");
        request.validate(service).expect("fits the service");
        let patient = request.patient_id().expect("a patient").to_string();
        let resolved = runtime
            .block_on(resolve(&request, &plan, &prefetch, None))
            .expect("the prefetch resolves without I/O");
        let provisional = resolved.snapshot(&rules, &patient, DateTime::<Utc>::MAX_UTC);
        let now = provisional
            .observations
            .iter()
            .map(|o| o.effective)
            .max()
            .unwrap_or_else(Utc::now);
        let snapshot = resolved.snapshot(&rules, &patient, now);
        let assessment = lrt_engine::evaluate(&rules, &snapshot, now);
        let input = CardInput {
            service,
            request: &request,
            rules: &rules,
            text: &text,
            snapshot: Some(&snapshot),
            evaluation_id: uuid::Uuid::nil(),
            dashboard: &dashboard,
            order_codes: &order_codes,
        };
        serde_json::to_vec(&respond(&input, &assessment)).expect("cards serialise")
    };
    for (name, body) in &cases {
        eprintln!("{name} MIMIC request: {} KB", body.len() / 1024);
        one_call(body);
        c.bench_function(&format!("hook_call_without_io_{name}"), |b| {
            b.iter(|| one_call(black_box(body)))
        });
    }
}

criterion_group!(benches, call);
criterion_main!(benches);
