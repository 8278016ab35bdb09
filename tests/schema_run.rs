//! Issue 8: the schema-driven run. Schemathesis (`st run`, from the virtualenv `make schema` makes
//! of `tests/schemathesis/requirements.txt`) generates requests from `openapi/openapi.yaml` for
//! every operation, valid and invalid, with a fixed seed and example budget, against the real
//! service: JWT authentication on (ES384, a trusted issuer whose JWK Set is a file, as in
//! production), a fresh database, a real FHIR server (Helios) as the EHR with one synthetic
//! patient, a real webhook receiver for the pages. The hook `tests/schemathesis/hooks.py` signs a
//! fresh token per request with the private key written here, `aud` = the endpoint called.
//!
//! It holds when Schemathesis finds no server error (5xx), no response that breaks the document
//! (schema, status code, content type, headers) and no other failure of its checks, every
//! operation was tested, and every secured operation had answers other than 401 (a run whose
//! tokens were all refused would prove nothing). The figures are printed.
//!
//! The virtualenv is found under the Cargo target directory (`schemathesis-venv`) or at
//! `LRT_SCHEMATHESIS_VENV`; when it is missing the test fails and says to run `make schema`.
//! The reports of the last run stay in `target/tmp/schema-run/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lrt_auth::dev::DevSigner;
use lrt_auth::{AuthConfig, TrustedIssuer};
use lrt_e2e::fhir_server::FhirServer;
use lrt_e2e::pager::PagerReceiver;
use lrt_e2e::service::{TestApp, repo_file};
use lrt_e2e::synthetic::{self, BORDERLINE};
use lrt_server::service::config::EvaluationTime;
use lrt_server::service::paging::WebhookConfig;
use serde_json::Value;

/// The run's fixed seed and budget: the same cases every run (with the pinned Schemathesis and
/// Hypothesis of the requirements file). `LRT_SCHEMA_SEED` and `LRT_SCHEMA_MAX_EXAMPLES` change
/// them for a run by hand (to look further), never in `make test`.
const SEED: &str = "20261203";
const MAX_EXAMPLES: &str = "150";

fn setting(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}
const ISS: &str = "https://ehr.schema-run.example";
const WEBHOOK_SECRET: &str = "schema-run-webhook-secret";
const SUBSCRIPTION_SECRET: &str = "schema-run-subscription-secret";
/// The synthetic patient on the FHIR server (the examples of the document name it).
const PATIENT: &str = "lrt-example-1";

fn venv() -> PathBuf {
    std::env::var_os("LRT_SCHEMATHESIS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("the target directory holds tmp/")
                .join("schemathesis-venv")
        })
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let st = venv().join("bin/st");
    assert!(
        st.is_file(),
        "{} is missing: run `make schema` (it makes the virtualenv from tests/schemathesis/requirements.txt), \
         or point LRT_SCHEMATHESIS_VENV at one",
        st.display()
    );
    lrt_fhir::client::install_crypto_provider();

    // The EHR: a real FHIR server with one synthetic patient.
    let fhir = tokio::task::spawn_blocking(FhirServer::start)
        .await
        .unwrap();
    fhir.client()
        .transaction(&synthetic::transaction(PATIENT, "g", BORDERLINE).to_string())
        .await
        .expect("the synthetic patient loads");

    // The CDS client's key: the public JWK Set for the service, the private JWK for the hook.
    let dir = tempfile::tempdir().unwrap();
    let signer = DevSigner::new(ISS, "schema-run-1");
    let jwks = dir.path().join("jwks.json");
    let private = dir.path().join("client-key.json");
    write_json(&jwks, &signer.jwks());
    write_json(&private, &signer.private_jwk());
    let secret = dir.path().join("subscription-secret");
    std::fs::write(&secret, format!("{SUBSCRIPTION_SECRET}\n")).unwrap();
    let webhook_secret = dir.path().join("webhook-secret");
    std::fs::write(&webhook_secret, format!("{WEBHOOK_SECRET}\n")).unwrap();
    let receiver = PagerReceiver::start(WEBHOOK_SECRET).await;

    let mut issuer = TrustedIssuer::new(ISS);
    issuer.jwks_file = Some(jwks);
    let auth = AuthConfig::new(vec![issuer]);
    let (base, webhook) = (fhir.base.clone(), receiver.url.clone());
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.evaluation_time = EvaluationTime::NewestBloodGas;
        c.fhir_allow = vec![base.clone()];
        c.ehr.fhir_base = Some(base);
        c.ehr.subscription_secret_file = Some(secret);
        c.paging.webhook = Some(WebhookConfig {
            url: webhook,
            secret_file: Some(webhook_secret),
            secret_env: None,
            timeout_ms: 2_000,
        });
        c.paging.poll_interval_ms = 50;
    })
    .await;

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schema-run");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let report = out.join("report.json");
    let tally = out.join("tally.json");
    let (seed, max_examples) = (
        setting("LRT_SCHEMA_SEED", SEED),
        setting("LRT_SCHEMA_MAX_EXAMPLES", MAX_EXAMPLES),
    );
    let mut cmd = Command::new(&st);
    cmd.current_dir(&out)
        .arg("--config-file")
        .arg(repo_file("tests/schemathesis/schemathesis.toml"))
        .arg("run")
        .arg(repo_file("openapi/openapi.yaml"))
        .args(["--url", &app.base])
        .args(["--seed", &seed, "--max-examples", &max_examples])
        .arg("--no-color")
        .args(["--report", "json", "--report-dir"])
        .arg(&out)
        .arg("--report-json-path")
        .arg(&report)
        .env(
            "SCHEMATHESIS_HOOKS",
            repo_file("tests/schemathesis/hooks.py"),
        )
        .env("LRT_SCHEMA_BASE", &app.base)
        .env("LRT_SCHEMA_KEY", &private)
        .env("LRT_SCHEMA_ISS", ISS)
        .env("LRT_SCHEMA_SUBSCRIPTION_SECRET", SUBSCRIPTION_SECRET)
        .env("LRT_SCHEMA_TALLY", &tally);
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{}: {e}", st.display()));
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::write(out.join("st.log"), format!("{stdout}\n{stderr}")).unwrap();
    assert!(
        output.status.success(),
        "Schemathesis failed ({}); its output (also in {}):\n{stdout}\n{stderr}",
        output.status,
        out.join("st.log").display()
    );

    let report = read_json(&report);
    let tally: BTreeMap<String, BTreeMap<String, u64>> =
        serde_json::from_value(read_json(&tally)).expect("the hook's tally");
    let ops = &report["operations"];
    let documented = documented_operations();
    assert_eq!(ops["total"], documented.len(), "{report:#}");
    assert_eq!(
        ops["tested"], ops["total"],
        "every operation tested: {report:#}"
    );
    assert_eq!(ops["errored"], 0, "{report:#}");
    assert_eq!(report["failures"], Value::Array(vec![]), "{report:#}");
    assert_eq!(report["errors"], Value::Array(vec![]), "{report:#}");
    for (operation, secured) in &documented {
        let statuses = tally
            .get(operation)
            .unwrap_or_else(|| panic!("{operation}: no request sent ({tally:?})"));
        let past_auth: u64 = statuses
            .iter()
            .filter(|(s, _)| s.as_str() != "401")
            .map(|(_, n)| n)
            .sum();
        assert!(
            !secured || past_auth > 0,
            "{operation}: every request refused ({statuses:?}): the hook's credentials do not verify"
        );
    }
    // The only tokens refused are those Schemathesis sent without one or spoilt on purpose: a
    // token of the hook refused (wrong audience, replayed, expired...) is a broken run.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rejections: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("lrt_jwt_rejections_total{"))
        .collect();
    for line in &rejections {
        assert!(
            line.contains("reason=\"missing\"") || line.contains("reason=\"malformed\""),
            "a token of the hook was refused: {line}"
        );
    }

    let requests: u64 = tally.values().flat_map(|s| s.values()).sum();
    println!(
        "schema run: {} operations, {} test cases, {requests} requests, seed {seed}, \
         --max-examples {max_examples}, {:.0} s (Schemathesis {}: {:.1} s), 0 failures",
        documented.len(),
        report["test_cases"]["generated"],
        elapsed.as_secs_f64(),
        report["schemathesis_version"].as_str().unwrap_or("?"),
        report["running_time"].as_f64().unwrap_or(f64::NAN),
    );
    let mut undocumented: BTreeMap<&str, u64> = BTreeMap::new();
    for (operation, statuses) in &tally {
        if documented.iter().any(|(o, _)| o == operation) {
            println!("  {operation}: {statuses:?}");
        } else {
            for (status, n) in statuses {
                *undocumented.entry(status).or_default() += n;
            }
        }
    }
    println!("  methods not documented on a path: {undocumented:?}");
    println!("  JWT refusals: {rejections:?}");
    app.stop().await;
    drop(receiver);
}

/// `METHOD /path` of every operation of the document, and whether it needs credentials (the
/// document's default security, the CDS client's JWT, unless the operation sets its own: none for
/// health, metrics and the document, the Subscription's secret for notifications).
fn documented_operations() -> Vec<(String, bool)> {
    let doc: Value = serde_saphyr::from_str(lrt_server::service::routes::health::OPENAPI)
        .expect("the OpenAPI document is YAML");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if method == "parameters" {
                continue;
            }
            let secured = op
                .get("security")
                .is_none_or(|s| s.as_array().is_some_and(|a| !a.is_empty()));
            out.push((format!("{} {path}", method.to_uppercase()), secured));
        }
    }
    out
}
