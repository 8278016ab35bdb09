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
//! call's throughput as a fraction of it (issue 9). And where each level's CPU went, per call:
//! this process (the service runs in it; the FHIR server and the proxy are idle then), every
//! PostgreSQL process of the machine, and wrk, read from `/proc` before and after the run, in
//! user space and in the kernel. And the WAL each call wrote (bytes, records, full-page images), the
//! transactions committed per call, and what each stored evaluation's JSON columns weigh, as text and
//! as stored.
//!
//! Then the same requests **without prefetch**, one at a time (three rounds of the 69): the
//! service searches the FHIR server itself, through a timing proxy in front of it that records
//! when the FHIR server was busy answering. Printed: the whole call, the FHIR server's busy time
//! in it, and the service's own time over the FHIR server's (issue 9's bar: under 2 ms), of which
//! the proxy's own forwarding (it is counted against the service, so the figure errs high).

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    let proxy = TimingProxy::start(fhir.base.clone()).await;
    let allow = vec![fhir.base.clone(), proxy.base.clone()];
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.fhir_allow = allow;
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
        let wal_before = Wal::now(&app.pool).await;
        let cpu_before = Cpu::now();
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
        let cpu = Cpu::now().since(&cpu_before);
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
        // After the ceiling's run, which writes nothing: the statistics of the load's last
        // transactions have been reported by then.
        let wal = Wal::now(&app.pool).await.since(&wal_before);
        let non_200: i64 = sqlx::query_scalar("SELECT count(*) FROM hook_call WHERE status <> 200")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        eprintln!("--- {connections} connection(s) ---\n{text}");
        let rate = |t: &str| field(t, "Requests/sec:").parse::<f64>().unwrap_or(f64::NAN);
        // wrk's "4403 requests in 10.06s, ..." line.
        let calls = text
            .lines()
            .find_map(|l| l.trim().split_once(" requests in"))
            .and_then(|(n, _)| n.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        let per_call = |t: f64| 1000.0 * t / calls;
        report.push(format!(
            "{connections:>2} connection(s), CPU per call: this process (the service) {:.2} ms \
             (user {:.2}, system {:.2}), PostgreSQL {:.2} ms (user {:.2}, system {:.2}), wrk {:.2} ms; \
             {:.0} % of the machine's {} cores busy in them",
            per_call(cpu.service.total()),
            per_call(cpu.service.user),
            per_call(cpu.service.system),
            per_call(cpu.postgres.total()),
            per_call(cpu.postgres.user),
            per_call(cpu.postgres.system),
            per_call(cpu.wrk),
            100.0 * (cpu.service.total() + cpu.postgres.total() + cpu.wrk) / (cpu.wall * cpu.cores),
            cpu.cores,
        ));
        report.push(format!(
            "{connections:>2} connection(s), WAL per call: {:.1} KB in {:.1} records, {:.2} full-page images; \
             {:.2} transactions committed per call (all statements of the run, lookups included)",
            wal.bytes / calls / 1000.0,
            wal.records / calls,
            wal.full_page_images / calls,
            wal.commits / calls,
        ));
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
    let without_prefetch = without_prefetch(&app, &client, &audience, &bodies, &proxy).await;
    // What one stored evaluation weighs: each JSON column as text and as stored (compressed,
    // TOAST pointers included).
    let sizes: Vec<(String, i64, Vec<f64>)> = sqlx::query_as(
        "SELECT role, count(*), ARRAY[ \
           avg(octet_length(snapshot::text)), avg(pg_column_size(snapshot)), \
           avg(octet_length(assessment::text)), avg(pg_column_size(assessment)), \
           avg(octet_length(response::text)), avg(pg_column_size(response)), \
           avg(octet_length(prefetch_sources::text)), avg(pg_column_size(prefetch_sources))]::float8[] \
         FROM evaluation GROUP BY role ORDER BY role",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    println!("what each stored evaluation's JSON weighs, mean KB as text / as stored:");
    for (role, n, s) in sizes {
        println!(
            "  {role:<6} ({n} rows): snapshot {:.1} / {:.1}, assessment {:.1} / {:.1}, \
             response {:.1} / {:.1}, prefetch_sources {:.2} / {:.2}",
            s[0] / 1000.0,
            s[1] / 1000.0,
            s[2] / 1000.0,
            s[3] / 1000.0,
            s[4] / 1000.0,
            s[5] / 1000.0,
            s[6] / 1000.0,
            s[7] / 1000.0,
        );
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
        let level = match level.as_str() {
            "00000000" => " 1 connection",
            "00000001" => "16 connections",
            _ => " 1 connection, without prefetch (FHIR searches included)",
        };
        println!("  {level}: p50 {p50:.2}, p99 {p99:.2}");
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
    println!("{without_prefetch}");
    app.stop().await;
    drop(fhir);
}

/// The 69 requests without prefetch, one at a time, three rounds: the service searches the FHIR
/// server through `proxy`. Per call: the whole call (as this client sees it), the FHIR server's
/// busy time in it, and the service's own time before storing (as the evaluation records it).
async fn without_prefetch(
    app: &TestApp,
    client: &CdsClient,
    audience: &str,
    bodies: &[Value],
    proxy: &TimingProxy,
) -> String {
    const ROUNDS: usize = 3;
    let http = reqwest::Client::new();
    let mut whole = Vec::new();
    let mut fhir_busy = Vec::new();
    let mut own = Vec::new();
    let mut forwarding = Vec::new();
    let mut searches = 0;
    for round in 0..ROUNDS {
        for (i, body) in bodies.iter().enumerate() {
            let mut body = body.clone();
            let hook_instance = format!("00000002-0000-4000-8{round:03}-{i:012}");
            body["hookInstance"] = json!(hook_instance);
            body["fhirServer"] = json!(proxy.base);
            body.as_object_mut().unwrap().remove("prefetch");
            let token = client.token(audience);
            proxy.forwarded.lock().unwrap().clear();
            let started = Instant::now();
            let res = http
                .post(audience)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status();
            res.bytes().await.unwrap();
            let took = started.elapsed();
            assert!(status.is_success(), "{hook_instance}: {status}");
            let spans = std::mem::take(&mut *proxy.forwarded.lock().unwrap());
            searches += spans.len();
            let busy = union(spans.iter().map(|s| (s.sent, s.read)).collect());
            let handled = union(spans.iter().map(|s| (s.entered, s.left)).collect());
            forwarding.push(ms(handled.saturating_sub(busy)));
            let latency_ms: f64 = sqlx::query_scalar(
                "SELECT latency_ms FROM evaluation WHERE hook_instance = $1 AND role = 'active'",
            )
            .bind(&hook_instance)
            .fetch_one(&app.pool)
            .await
            .unwrap();
            whole.push(ms(took));
            fhir_busy.push(ms(busy));
            own.push(latency_ms - ms(busy));
        }
    }
    let over: Vec<f64> = whole.iter().zip(&fhir_busy).map(|(w, f)| w - f).collect();
    format!(
        "without prefetch, 1 connection, {n} calls one at a time ({per:.1} FHIR searches per call, through a timing proxy):\n  \
         whole call p50 {:.2} ms, p99 {:.2}; the FHIR server busy p50 {:.2} ms, p99 {:.2}\n  \
         the service's own time over the FHIR server's: before storing p50 {:.2} ms, p99 {:.2} (issue 9's bar: < 2 ms); \
         the whole call, storing included, p50 {:.2} ms, p99 {:.2}\n  \
         of the service's time, the timing proxy's own forwarding (counted against the service): p50 {:.2} ms, p99 {:.2}",
        quantile(&whole, 0.5),
        quantile(&whole, 0.99),
        quantile(&fhir_busy, 0.5),
        quantile(&fhir_busy, 0.99),
        quantile(&own, 0.5),
        quantile(&own, 0.99),
        quantile(&over, 0.5),
        quantile(&over, 0.99),
        quantile(&forwarding, 0.5),
        quantile(&forwarding, 0.99),
        n = whole.len(),
        per = searches as f64 / whole.len() as f64,
    )
}

/// CPU seconds used so far by this process (the service runs in it), by every PostgreSQL
/// process of the machine, and by this process's finished children (wrk), from `/proc`.
struct Cpu {
    at: Instant,
    service: Times,
    postgres: Times,
    children: f64,
}

/// CPU seconds in user space and in the kernel (system calls, network, task switches).
#[derive(Clone, Copy, Default)]
struct Times {
    user: f64,
    system: f64,
}

impl Times {
    fn total(self) -> f64 {
        self.user + self.system
    }

    fn minus(self, before: Times) -> Times {
        Times {
            user: self.user - before.user,
            system: self.system - before.system,
        }
    }

    fn per_second(self, ticks: f64) -> Times {
        Times {
            user: self.user / ticks,
            system: self.system / ticks,
        }
    }
}

/// The WAL the PostgreSQL server has written so far (all its databases: nothing else writes
/// during the run): bytes, from the insert position, and records and full-page images, from
/// `pg_stat_wal` (which backends report at the end of their transactions, within a second).
struct Wal {
    bytes: f64,
    records: f64,
    full_page_images: f64,
    /// Transactions committed in the run's own database (`pg_stat_database`): with group
    /// commit, fewer than one per call. (Summed over every database, as it was, another job's
    /// databases counted too, and one dropped during the run made the figure negative.)
    commits: f64,
}

impl Wal {
    async fn now(pool: &sqlx::PgPool) -> Wal {
        let (bytes, records, full_page_images, commits): (f64, f64, f64, f64) = sqlx::query_as(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8, \
               wal_records::float8, wal_fpi::float8, \
               (SELECT xact_commit::float8 FROM pg_stat_database WHERE datname = current_database()) \
             FROM pg_stat_wal",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        Wal {
            bytes,
            records,
            full_page_images,
            commits,
        }
    }

    fn since(&self, before: &Wal) -> Wal {
        Wal {
            bytes: self.bytes - before.bytes,
            records: self.records - before.records,
            full_page_images: self.full_page_images - before.full_page_images,
            commits: self.commits - before.commits,
        }
    }
}

/// What each used between two [`Cpu`] readings, over `wall` seconds on `cores` cores.
struct CpuUsed {
    wall: f64,
    cores: f64,
    service: Times,
    postgres: Times,
    wrk: f64,
}

impl Cpu {
    fn now() -> Cpu {
        let ticks = clock_ticks();
        let (service, children) = stat_times(&std::fs::read_to_string("/proc/self/stat").unwrap());
        let mut postgres = Times::default();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if stat.contains("(postgres)") {
                let own = stat_times(&stat).0;
                postgres.user += own.user;
                postgres.system += own.system;
            }
        }
        Cpu {
            at: Instant::now(),
            service: service.per_second(ticks),
            postgres: postgres.per_second(ticks),
            children: children / ticks,
        }
    }

    fn since(&self, before: &Cpu) -> CpuUsed {
        CpuUsed {
            wall: (self.at - before.at).as_secs_f64(),
            cores: std::thread::available_parallelism().map_or(f64::NAN, |n| n.get() as f64),
            service: self.service.minus(before.service),
            postgres: self.postgres.minus(before.postgres),
            wrk: self.children - before.children,
        }
    }
}

/// A process's own CPU (user, system) and its waited-for children's (user + system), in clock
/// ticks, from the text of its `/proc/<pid>/stat` (fields 14 to 17; the name in field 2 may
/// hold spaces).
fn stat_times(stat: &str) -> (Times, f64) {
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    let at = |i: usize| fields.get(i - 3).copied().unwrap_or(0.0);
    (
        Times {
            user: at(14),
            system: at(15),
        },
        at(16) + at(17),
    )
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), the unit of `/proc/<pid>/stat`.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The time covered by at least one of the intervals.
fn union(mut spans: Vec<(Instant, Instant)>) -> Duration {
    spans.sort_by_key(|s| s.0);
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(Duration::ZERO, |(s, e)| e - s)
}

/// The `q` quantile (nearest rank) of `values`.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// A reverse proxy in front of the FHIR server that records, for each request, from when it
/// was sent to the FHIR server to when its whole answer was read: the FHIR server's busy time
/// (plus one loopback hop). Links in the answers (`next`, `fullUrl`) are rewritten to the proxy,
/// so paged searches go through it too.
struct TimingProxy {
    base: String,
    forwarded: Arc<Mutex<Vec<Forwarded>>>,
}

/// The times of one forwarded request: the proxy received it, sent it to the FHIR server, had
/// read the whole answer, and handed its answer back (before it is written to the socket).
struct Forwarded {
    entered: Instant,
    sent: Instant,
    read: Instant,
    left: Instant,
}

impl TimingProxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let state = (
            upstream,
            base.clone(),
            forwarded.clone(),
            reqwest::Client::new(),
        );
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::new(state));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TimingProxy { base, forwarded }
    }
}

type ProxyState = Arc<(String, String, Arc<Mutex<Vec<Forwarded>>>, reqwest::Client)>;

async fn forward(
    axum::extract::State(state): axum::extract::State<ProxyState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let entered = Instant::now();
    let (upstream, base, forwarded, http) = &*state;
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut onward = http.get(format!("{upstream}{path}"));
    for name in ["accept", "authorization"] {
        if let Some(v) = request.headers().get(name) {
            onward = onward.header(name, v.as_bytes());
        }
    }
    let sent = Instant::now();
    let res = onward.send().await.unwrap();
    let status = res.status().as_u16();
    let content_type = res.headers().get("content-type").cloned();
    let body = res.text().await.unwrap();
    let read = Instant::now();
    let mut answer =
        axum::response::Response::new(axum::body::Body::from(body.replace(upstream, base)));
    *answer.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
    if let Some(ct) = content_type {
        answer.headers_mut().insert("content-type", ct);
    }
    forwarded.lock().unwrap().push(Forwarded {
        entered,
        sent,
        read,
        left: Instant::now(),
    });
    answer
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
