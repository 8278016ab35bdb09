//! Instruction counts of one CDS Hooks call without I/O (issue 9), for `valgrind --tool=callgrind`:
//! the same call as `make bench`'s `hook_call_without_io` (`tests/benches/call.rs`) — the ES384
//! JWT check, reading the body, validating it, resolving the prefetch (every key present: nothing
//! fetched), the snapshot, the engine under the active rule set and the cards serialised — on the
//! median MIMIC-IV demo request of `../shared`, `N` times (argument 1, default 20).
//!
//! Each step is a function of its own (`step_*`, never inlined) and the calls run inside
//! `measured_calls`, so that setup (rule set, keys, runtime) is left out with
//!
//! ```sh
//! CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p lrt-hooks --example call_count
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='call_count::measured_calls' \
//!     target/release/examples/call_count 20
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! Instructions per call = the collected total / N (the first, warming call is outside).

use std::hint::black_box;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use lrt_auth::dev::DevSigner;
use lrt_auth::{AuthConfig, TrustedIssuer, Verifier};
use lrt_engine::assessment::Assessment;
use lrt_engine::ruleset::index::RulesRoot;
use lrt_engine::testing::{repo_root, shared_dir};
use lrt_engine::{PatientSnapshot, RuleSet};
use lrt_hooks::cards::templates::CardText;
use lrt_hooks::cards::{CardInput, respond};
use lrt_hooks::model::HookRequest;
use lrt_hooks::orders::OrderCodes;
use lrt_hooks::prefetch::{PrefetchConfig, PrefetchPlan, Resolved, resolve};
use lrt_hooks::services::Service;

const ISS: &str = "https://ehr.bench.example";
const AUD: &str = "https://lrt.bench.example/cds-services/lrt-patient-view";

struct Setup {
    rules: RuleSet,
    plan: PrefetchPlan,
    prefetch: PrefetchConfig,
    text: CardText,
    order_codes: OrderCodes,
    dashboard: url::Url,
    service: &'static Service,
    verifier: Verifier,
    runtime: tokio::runtime::Runtime,
    token: String,
}

#[inline(never)]
fn step_jwt(s: &Setup) {
    s.runtime
        .block_on(s.verifier.verify(&s.token, AUD))
        .expect("the token verifies");
}

#[inline(never)]
fn step_parse(body: &[u8]) -> HookRequest {
    HookRequest::from_slice(body).expect("a valid request")
}

#[inline(never)]
fn step_validate(s: &Setup, request: &HookRequest) {
    request.validate(s.service).expect("fits the service");
}

#[inline(never)]
fn step_prefetch(s: &Setup, request: &HookRequest) -> Resolved {
    s.runtime
        .block_on(resolve(request, &s.plan, &s.prefetch, None))
        .expect("the prefetch resolves without I/O")
}

#[inline(never)]
fn step_snapshot(
    s: &Setup,
    resolved: &Resolved,
    patient: &str,
) -> (PatientSnapshot, DateTime<Utc>) {
    let provisional = resolved.snapshot(&s.rules, patient, DateTime::<Utc>::MAX_UTC);
    let now = provisional
        .observations
        .iter()
        .map(|o| o.effective)
        .max()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    (resolved.snapshot(&s.rules, patient, now), now)
}

#[inline(never)]
fn step_engine(s: &Setup, snapshot: &PatientSnapshot, now: DateTime<Utc>) -> Assessment {
    lrt_engine::evaluate(&s.rules, snapshot, now)
}

#[inline(never)]
fn step_cards(
    s: &Setup,
    request: &HookRequest,
    snapshot: &PatientSnapshot,
    assessment: &Assessment,
) -> Vec<u8> {
    let input = CardInput {
        service: s.service,
        request,
        rules: &s.rules,
        text: &s.text,
        snapshot: Some(snapshot),
        evaluation_id: uuid::Uuid::nil(),
        dashboard: &s.dashboard,
        order_codes: &s.order_codes,
    };
    serde_json::to_vec(&respond(&input, assessment)).expect("cards serialise")
}

fn one_call(s: &Setup, body: &[u8]) -> Vec<u8> {
    step_jwt(s);
    let request = step_parse(body);
    step_validate(s, &request);
    let patient = request.patient_id().expect("a patient").to_string();
    let resolved = step_prefetch(s, &request);
    let (snapshot, now) = step_snapshot(s, &resolved, &patient);
    let assessment = step_engine(s, &snapshot, now);
    step_cards(s, &request, &snapshot, &assessment)
}

/// The calls measured (callgrind's `--toggle-collect` target).
#[inline(never)]
fn measured_calls(s: &Setup, body: &[u8], n: usize) -> usize {
    let mut bytes = 0;
    for _ in 0..n {
        bytes += black_box(one_call(s, black_box(body))).len();
    }
    bytes
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N, a number of calls"))
        .unwrap_or(20);
    let rules = RulesRoot::open(&repo_root().join("rules"))
        .and_then(|root| root.load_active())
        .expect("the active rule set");
    let signer = DevSigner::new(ISS, "bench-key");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, signer.jwks().to_string()).expect("the JWKS file");
    let mut issuer = TrustedIssuer::new(ISS);
    issuer.jwks_file = Some(jwks);
    let setup = Setup {
        plan: PrefetchPlan::new(&rules),
        prefetch: PrefetchConfig::default(),
        text: CardText::for_rules(&rules).expect("card texts"),
        order_codes: OrderCodes::for_rules(&rules).expect("order codes"),
        dashboard: "https://lrt.bench.example/".parse().expect("a URL"),
        service: lrt_hooks::services::find("lrt-patient-view").expect("the service"),
        verifier: Verifier::new(AuthConfig::new(vec![issuer])).expect("a verifier"),
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime"),
        token: signer.token(AUD),
        rules,
    };

    // The median request body, as `tests/benches/call.rs` picks it (compact JSON text).
    let dir = shared_dir().join("data/cds-hooks-requests/mimic-lrt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut bodies: Vec<Vec<u8>> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("a request file");
            let json: serde_json::Value = serde_json::from_str(&text).expect("request JSON");
            json.to_string().into_bytes()
        })
        .collect();
    bodies.sort_by_key(Vec::len);
    let body = bodies[bodies.len() / 2].clone();

    let warm = one_call(&setup, &body);
    let bytes = measured_calls(&setup, &body, n);
    eprintln!(
        "median MIMIC request {} bytes, {n} calls measured, response {} bytes",
        body.len(),
        warm.len()
    );
    black_box(bytes);
}
