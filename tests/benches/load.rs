//! `make load` (`cargo bench -p lrt-e2e --bench load`): the CDS Hooks service under load.
//!
//! Set-up, all real: a fresh PostgreSQL database (persistence on), the Helios FHIR server loaded
//! with the MIMIC-IV demo patients, the service built as `lrt serve` builds it (release), a CDS
//! client whose ES384 keys a local JWKS server publishes. The 69 MIMIC requests get a **full
//! prefetch**: every key of discovery filled the way an EHR does, by running the service's own
//! templates against the FHIR server once before the run.
//!
//! Each request of the run is distinct, as in production: its own `hookInstance` (so every call
//! evaluates and stores, none is an idempotent replay) and its own JWT (`jti` used once). The
//! bodies and tokens are made before the run and handed to `wrk` (a Lua script cycles through
//! them), at 1 and at 16 concurrent connections, 10 s each.
//!
//! Printed: requests/s, p50 and p99 latency for each level, and the rows stored; and the
//! ceiling: `GET /health/live` of the same process under the same wrk settings, with the hook
//! call's throughput as a fraction of it (issue 9).

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use lrt_auth::{AuthConfig, TrustedIssuer};
use lrt_e2e::cds_client::{CdsClient, JwksServer};
use lrt_e2e::fhir_server::FhirServer;
use lrt_e2e::hook_requests;
use lrt_e2e::service::TestApp;
use serde_json::{Value, json};

/// `--features mimalloc`: the same run with mimalloc as the process's allocator (the service
/// runs inside this process), to compare with glibc malloc.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PATH: &str = "/cds-services/lrt-patient-view";
const SECONDS: u64 = 10;

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed (Debian: apt-get install wrk; `make load` installs it)");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    lrt_fhir::client::install_crypto_provider();
    let fhir = tokio::task::spawn_blocking(FhirServer::start)
        .await
        .unwrap();
    assert_eq!(fhir.load_mimic().await, 86);

    let client = CdsClient::new("https://ehr.load.example");
    let jwks = JwksServer::start(client.jwks()).await;
    let mut issuer = TrustedIssuer::new(client.iss.clone());
    issuer.jwks_url = Some(jwks.url.parse().unwrap());
    let mut auth = AuthConfig::new(vec![issuer]);
    auth.allow_insecure_loopback_http = true;
    let fhir_base = fhir.base.clone();
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.fhir_allow = vec![fhir_base];
        c.evaluation_time = lrt_server::service::config::EvaluationTime::NewestBloodGas;
        c.log_format = lrt_server::service::config::LogFormat::Text;
    })
    .await;

    // The full prefetch of each request: the published templates run against the FHIR server.
    let rules = lrt_engine::RuleSet::load(&lrt_engine::testing::shipped_version_dir()).unwrap();
    let templates = lrt_hooks::services::prefetch_templates(&rules);
    let http = reqwest::Client::new();
    let mut bodies = Vec::new();
    for r in hook_requests() {
        let mut request = r.json.clone();
        let context = request["context"].as_object().unwrap().clone();
        let mut prefetch = serde_json::Map::new();
        for t in &templates {
            let query = lrt_hooks::services::fill_tokens(&t.template, &context).unwrap();
            let res = http
                .get(format!("{}/{query}", fhir.base))
                .header("accept", "application/fhir+json")
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "{query}: {}", res.status());
            let mut v: Value = res.json().await.unwrap();
            // No data is `null` (CDS Hooks 2.0 D.14), not an empty Bundle.
            if v["resourceType"] == "Bundle" && v["entry"].as_array().is_none_or(|e| e.is_empty()) {
                v = Value::Null;
            }
            prefetch.insert(t.key.clone(), v);
        }
        request["prefetch"] = Value::Object(prefetch);
        request["fhirServer"] = json!(fhir.base);
        bodies.push(request);
    }

    let audience = app.url(PATH);
    // The 69 bodies, with a placeholder for the hookInstance the script fills per request.
    let bodies_file = tempfile::NamedTempFile::new().unwrap();
    {
        let mut w = std::io::BufWriter::new(bodies_file.as_file());
        for body in &bodies {
            let mut body = body.clone();
            body["hookInstance"] = json!("@HOOK_INSTANCE@");
            writeln!(w, "{body}").unwrap();
        }
    }
    let mut report = Vec::new();
    for (level, connections) in [1usize, 16].into_iter().enumerate() {
        // One token per request the run can send, each with its own jti.
        let n = 30_000;
        let tokens = tempfile::NamedTempFile::new().unwrap();
        {
            let mut w = std::io::BufWriter::new(tokens.as_file());
            for _ in 0..n {
                writeln!(w, "{}", client.token(&audience)).unwrap();
            }
        }
        let script = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            script.path(),
            LUA.replace("@TOKENS@", &tokens.path().display().to_string())
                .replace("@BODIES@", &bodies_file.path().display().to_string())
                .replace("@LEVEL@", &level.to_string()),
        )
        .unwrap();
        let before: i64 = sqlx::query_scalar("SELECT count(*) FROM evaluation")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        let threads = connections.min(2);
        let out = tokio::task::spawn_blocking({
            let url = audience.clone();
            let script = script.path().to_path_buf();
            move || {
                Command::new("wrk")
                    .args([
                        "-t",
                        &threads.to_string(),
                        "-c",
                        &connections.to_string(),
                        "-d",
                        &format!("{SECONDS}s"),
                        "--latency",
                        "-s",
                    ])
                    .arg(&script)
                    .arg(&url)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        // The ceiling: the same wrk settings against the same process's cheapest route.
        let ceiling = tokio::task::spawn_blocking({
            let url = app.url("/health/live");
            move || {
                Command::new("wrk")
                    .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
                    .args(["-d", &format!("{SECONDS}s"), "--latency"])
                    .arg(&url)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let ceiling = String::from_utf8_lossy(&ceiling.stdout).to_string();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after: i64 = sqlx::query_scalar("SELECT count(*) FROM evaluation")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        let non_200: i64 = sqlx::query_scalar("SELECT count(*) FROM hook_call WHERE status <> 200")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        eprintln!("--- {connections} connection(s) ---\n{text}");
        let rate = |t: &str| field(t, "Requests/sec:").parse::<f64>().unwrap_or(f64::NAN);
        report.push(format!(
            "{connections:>2} connection(s): {} req/s, p50 {}, p99 {}; {} evaluations stored; {} non-200 answers so far; \
             ceiling (GET /health/live, same wrk settings) {} req/s, p99 {}: the hook call is {:.1} % of it",
            field(&text, "Requests/sec:"),
            percentile(&text, "50%"),
            percentile(&text, "99%"),
            after - before,
            non_200,
            field(&ceiling, "Requests/sec:"),
            percentile(&ceiling, "99%"),
            100.0 * rate(&text) / rate(&ceiling),
        ));
    }
    let sources: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT key, value->>'source', count(*) FROM evaluation, jsonb_each(prefetch_sources) \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    println!("where the data of each prefetch key came from (evaluations):");
    for (key, source, n) in sources {
        println!("  {key:<26} {:<20} {n}", source.unwrap_or_default());
    }
    // Where the time goes, per level (the hookInstance starts with the level): the service's
    // own time before storing (JWT, prefetch, snapshot, evaluation, cards), as each evaluation
    // records it; storing is in the one commit after it, so the whole call is wrk's latency.
    let split: Vec<(String, f64, f64)> = sqlx::query_as(
        "SELECT substr(hook_instance, 1, 8), \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), \
           percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) \
         FROM evaluation WHERE role = 'active' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    println!("the service's own time before storing (ms), per level:");
    for (level, p50, p99) in split {
        let connections = if level.trim_start_matches('0').is_empty() {
            1
        } else {
            16
        };
        println!("  {connections:>2} connection(s): p50 {p50:.2}, p99 {p99:.2}");
    }
    println!(
        "CDS hook with full prefetch, persisted, JWT verified (ES384), wrk on the same machine, allocator {}:",
        if cfg!(feature = "mimalloc") {
            "mimalloc"
        } else {
            "system (glibc)"
        }
    );
    for line in report {
        println!("  {line}");
    }
    app.stop().await;
    drop(fhir);
}

fn field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| "?".into())
}

fn percentile(text: &str, p: &str) -> String {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(p).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| "?".into())
}

/// Each wrk thread takes every other token (by thread id) and cycles through the 69 bodies,
/// giving each request a fresh hookInstance (`<level>-<thread>-<counter>` as a UUID). wrk counts
/// a non-2xx answer as an error ("Non-2xx or 3xx responses").
const LUA: &str = r#"
local threads_ = {}
function setup(thread)
  table.insert(threads_, thread)
  thread:set("tid", #threads_)
end
local tokens, heads, tails = {}, {}, {}
local t_i, b_i, counter = 1, 1, 0
function init(args)
  local n = 0
  for line in io.lines("@TOKENS@") do
    n = n + 1
    if (n % 2) == (tid % 2) then table.insert(tokens, line) end
  end
  for line in io.lines("@BODIES@") do
    local s, e = string.find(line, "@HOOK_INSTANCE@", 1, true)
    table.insert(heads, string.sub(line, 1, s - 1))
    table.insert(tails, string.sub(line, e + 1))
  end
end
function request()
  counter = counter + 1
  local id = string.format("%08d-0000-4000-8%03d-%012d", @LEVEL@, tid, counter)
  local token = tokens[t_i]
  t_i = t_i + 1
  if t_i > #tokens then t_i = 1 end
  local body = heads[b_i] .. id .. tails[b_i]
  b_i = b_i + 1
  if b_i > #heads then b_i = 1 end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
"#;
