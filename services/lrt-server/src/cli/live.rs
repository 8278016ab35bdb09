//! The live part of `lrt demo`: PostgreSQL (`DATABASE_URL`, else a throw-away cluster), the FHIR
//! server loaded with the MIMIC-IV demo patients, and `lrt serve` on 127.0.0.1 (port
//! `LRT_DEMO_PORT`, default 8080), trusting one local development key (made now, its JWK Set in
//! a temporary file). It sends a real CDS Hooks call for a real patient, prints the `curl`
//! command and the card, prints where to look, and serves until Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lrt_auth::dev::DevSigner;
use lrt_auth::{AuthConfig, TrustedIssuer};
use lrt_server::dev::fhir_server::{FhirServer, hfs_binary};
use lrt_server::dev::postgres::TempCluster;
use lrt_server::service::config::{EvaluationTime, LogFormat};
use lrt_server::service::{self, App, Config, telemetry};
use serde_json::{Value, json};

use super::CliError;

/// The patient shown: a ventilated MIMIC-IV demo patient whose newest blood gas has an FiO2
/// within the hour (P/F 61).
const PATIENT: &str = "mimic-10037975";
const ISSUER: &str = "urn:lrt:demo-ehr";

fn fail(what: &str) -> impl Fn(String) -> CliError + '_ {
    move |e| CliError::BadInput(format!("demo: {what}: {e}"))
}

fn shared_dir() -> PathBuf {
    std::env::var_os("LRT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"))
}

pub fn run(rules_dir: &Path) -> Result<(), CliError> {
    let _telemetry = telemetry::init(LogFormat::Text);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail("runtime")(e.to_string()))?
        .block_on(live(rules_dir))
}

async fn live(rules_dir: &Path) -> Result<(), CliError> {
    let shared = shared_dir();
    let repo = std::env::current_dir().map_err(|e| fail("current folder")(e.to_string()))?;
    lrt_fhir::client::install_crypto_provider();

    // 1. The database.
    let mut cluster = None;
    let database_url = match std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty()) {
        Some(url) => {
            eprintln!("database: DATABASE_URL");
            url
        }
        None => {
            eprintln!("database: starting a throw-away PostgreSQL cluster...");
            let c = TempCluster::start().map_err(|e| fail("PostgreSQL")(e.to_string()))?;
            let url = c.url.clone();
            cluster = Some(c);
            url
        }
    };

    // 2. The FHIR server with the MIMIC-IV demo patients.
    eprintln!("FHIR server: starting Helios FHIR Server and loading the MIMIC-IV demo patients...");
    let fhir = FhirServer::start(&hfs_binary(&repo), &shared)
        .map_err(|e| fail("FHIR server")(e.to_string()))?;
    let loaded = fhir
        .load_mimic(&shared)
        .await
        .map_err(|e| fail("FHIR server")(e.to_string()))?;

    // 3. A local development key, trusted by this service only.
    let keys = tempfile::tempdir().map_err(|e| fail("temporary folder")(e.to_string()))?;
    let signer = DevSigner::new(ISSUER, "demo-key");
    let jwks_file = keys.path().join("demo-jwks.json");
    std::fs::write(&jwks_file, signer.jwks().to_string())
        .map_err(|e| fail("key file")(e.to_string()))?;
    // The private key too, so that the printed commands mint tokens of their own
    // (`lrt dev token`): every token is good for one call (jti).
    let key_file = keys.path().join("demo-key.json");
    std::fs::write(&key_file, signer.private_jwk().to_string())
        .map_err(|e| fail("key file")(e.to_string()))?;
    let mut issuer = TrustedIssuer::new(ISSUER);
    issuer.jwks_file = Some(jwks_file);

    // 4. The service.
    let port: u16 = std::env::var("LRT_DEMO_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let config = Config {
        listen: ([127, 0, 0, 1], port).into(),
        public_base_url: format!("http://127.0.0.1:{port}"),
        database_url: Some(database_url.clone()),
        rules_dir: rules_dir.to_path_buf(),
        fhir_allow: vec![fhir.base.clone()],
        auth: Some(AuthConfig::new(vec![issuer])),
        // MIMIC dates are shifted into the 22nd century: evaluate at the newest blood gas.
        evaluation_time: EvaluationTime::NewestBloodGas,
        log_format: LogFormat::Text,
        ..Config::default()
    };
    config
        .check()
        .map_err(|e| fail("configuration")(e.to_string()))?;
    let listener = service::listen(&config)
        .await
        .map_err(|e| fail("listen")(format!("{e} (set LRT_DEMO_PORT to use another port)")))?;
    let app = App::build(config)
        .await
        .map_err(|e| fail("service")(e.to_string()))?;
    let rules_label = app.state.rules.label();
    let server = tokio::spawn(app.serve(listener, service::shutdown_signal()));
    let base = format!("http://127.0.0.1:{port}");

    // 5. A real call for a real patient.
    let requests = shared.join("data/cds-hooks-requests/mimic-lrt");
    let text = std::fs::read_to_string(requests.join(format!("{PATIENT}.json")))
        .map_err(|e| fail("request")(e.to_string()))?;
    let mut request: Value =
        serde_json::from_str(&text).map_err(|e| fail("request")(e.to_string()))?;
    request["fhirServer"] = json!(fhir.base);
    request["hookInstance"] = json!(random_uuid());
    let request_file = keys.path().join("request.json");
    std::fs::write(
        &request_file,
        serde_json::to_string_pretty(&request).unwrap_or_default(),
    )
    .map_err(|e| fail("request file")(e.to_string()))?;
    let url = format!("{base}/cds-services/lrt-patient-view");
    let token = signer.sign(&signer.header(), &signer.claims(&url, 3600));
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .map_err(|e| fail("call")(e.to_string()))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| fail("call")(e.to_string()))?;
    let body: Value = serde_json::from_str(&text).map_err(|e| fail("call")(e.to_string()))?;
    let response_file = keys.path().join("response.json");
    std::fs::write(
        &response_file,
        serde_json::to_string_pretty(&body).unwrap_or_default(),
    )
    .map_err(|e| fail("response file")(e.to_string()))?;

    let card = &body["cards"][0];
    let evaluation = card["extension"]["org.lrt-cds"]["evaluationId"]
        .as_str()
        .unwrap_or("");
    let lrt = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "lrt".into());
    let mint = |aud: &str| {
        format!(
            "$({lrt} dev token --key {} --aud {aud})",
            key_file.display()
        )
    };
    let mut out = vec![
        String::new(),
        "=== lrt serve is running ===".to_string(),
        format!("service:      {base}  (rule set {rules_label})"),
        format!(
            "FHIR server:  {}  ({loaded} MIMIC-IV demo patients loaded)",
            fhir.base
        ),
        format!(
            "database:     {}",
            if cluster.is_some() {
                "a throw-away PostgreSQL cluster (removed on exit)".to_string()
            } else {
                "DATABASE_URL".to_string()
            }
        ),
        String::new(),
        format!(
            "A real CDS Hooks call (patient-view for {PATIENT}); to make it again (each command mints"
        ),
        "a token of its own with the demo key: a token is good for one call), paste:".to_string(),
        format!(
            "  curl -s -X POST {url} -H 'Content-Type: application/json' \\\n    -H \"Authorization: Bearer {}\" \\\n    --data @{}",
            mint(&url),
            request_file.display()
        ),
        String::new(),
        format!(
            "Answer: HTTP {status}; the whole response is in {}",
            response_file.display()
        ),
        format!(
            "  [{}] {}",
            card["indicator"].as_str().unwrap_or("-"),
            card["summary"].as_str().unwrap_or("-")
        ),
        String::new(),
    ];
    for line in card["detail"].as_str().unwrap_or("").lines() {
        out.push(format!("  {line}"));
    }
    out.extend([
        String::new(),
        "Where to look (paste as they are; each mints its own token):".to_string(),
        format!(
            "  discovery:   curl -s {base}/cds-services -H \"Authorization: Bearer {}\"",
            mint(&format!("{base}/cds-services"))
        ),
        format!(
            "  evaluation:  curl -s {base}/api/v1/evaluations/{evaluation} -H \"Authorization: Bearer {}\"",
            mint(&format!("{base}/api/v1"))
        ),
        format!("  health:      curl -s {base}/health/ready"),
        format!("  metrics:     curl -s {base}/metrics"),
        format!("  OpenAPI:     curl -s {base}/openapi.yaml"),
        "  the 69 MIMIC requests: ../shared/data/cds-hooks-requests/mimic-lrt/ (set fhirServer to the FHIR server above)".to_string(),
        String::new(),
        format!(
            "Serving on {base} until Ctrl-C (the FHIR server and a throw-away database stop with it)."
        ),
    ]);
    super::write_stdout(&(out.join("\n") + "\n"))?;
    let _ = server.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(fhir);
    drop(cluster);
    Ok(())
}

fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
