//! Three `lrt serve` processes (the real binary) on one PostgreSQL database, 500 triggering
//! CDS Hooks calls spread over them, one process killed with SIGKILL while it is delivering:
//! every page is delivered, none is lost, and the receiver sees each idempotency key at least
//! once. Delivery is **at least once**: a page whose delivery was in flight in the killed
//! process is delivered again by another replica after its lease runs out, and the receiver
//! keeps one per key (the test's receiver dedupes as a real one must). The test proves both
//! halves: every key arrives, and the killed process's claims were taken over.
//!
//! The `lrt` binary is the one `cargo test --workspace` builds (`target/debug/lrt`).

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lrt_e2e::pager::{PagerReceiver, eventually};
use lrt_e2e::service::{TestDb, lrt_binary};
use lrt_e2e::synthetic::{self, BORDERLINE};
use lrt_engine::testing::repo_root;

const PAGES: usize = 500;
const SECRET: &str = "test-only-webhook-secret";

struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_replica(n: usize, dir: &std::path::Path, database_url: &str, webhook: &str) -> Replica {
    let port = lrt_server::dev::free_port().unwrap();
    let secret = dir.join("webhook-secret");
    std::fs::write(&secret, SECRET).unwrap();
    let config = dir.join(format!("replica-{n}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
public_base_url = "http://127.0.0.1:{port}"
database_url = "{database_url}"
rules_dir = "{rules}"
insecure_no_auth = true
evaluation_time = "newest_blood_gas"
log_format = "json"

[paging]
poll_interval_ms = 100
lease_ms = 2000
initial_backoff_ms = 100
max_backoff_ms = 500
batch = 16
worker_id = "replica-{n}"

[paging.webhook]
url = "{webhook}"
secret_file = "{secret}"
timeout_ms = 1500
"#,
            rules = repo_root().join("rules").display(),
            secret = secret.display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("replica-{n}.log"))).unwrap();
    let child = Command::new(lrt_binary())
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("lrt serve starts");
    Replica {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_deliver_every_page_even_when_one_is_killed_mid_dispatch() {
    lrt_fhir::client::install_crypto_provider();
    let db = TestDb::create().await;
    let receiver = PagerReceiver::start(SECRET).await;
    // Slow answers (1 s each, 48 at a time over the three replicas) build a backlog during the
    // first half of the calls, so replica 1 certainly holds claims when it is killed.
    receiver.delay(Duration::from_millis(1000));
    let dir = tempfile::tempdir().unwrap();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|n| start_replica(n, dir.path(), &db.url, &receiver.url))
        .collect();
    let http = reqwest::Client::new();
    for r in &replicas {
        let url = format!("{}/health/ready", r.base);
        let ready = eventually(Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .send()
                    .await
                    .is_ok_and(|res| res.status().is_success())
            }
        })
        .await;
        assert!(
            ready,
            "{url} not ready; see the replica logs in {}",
            dir.path().display()
        );
    }

    // 500 triggering calls (one borderline patient each), 16 at a time; replica 1 is killed
    // after the first half, the second half goes to the two others.
    let call = |base: String, i: usize| {
        let http = http.clone();
        async move {
            let body = synthetic::patient_view(&format!("syn-rep-{i}"), BORDERLINE);
            let res = http
                .post(format!("{base}/cds-services/lrt-patient-view"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("the replica answers");
            assert_eq!(res.status(), reqwest::StatusCode::OK, "call {i}");
        }
    };
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let send = |range: std::ops::Range<usize>, targets: Vec<String>| {
        let call = &call;
        async move {
            let mut set = tokio::task::JoinSet::new();
            for i in range {
                if set.len() >= 16 {
                    set.join_next().await.unwrap().unwrap();
                }
                set.spawn(call(targets[i % targets.len()].clone(), i));
            }
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
        }
    };
    send(0..PAGES / 2, bases.clone()).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    // Kill replica 1 while it holds claims (its deliveries wait on the slow receiver).
    let holding = eventually(Duration::from_secs(10), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM page_delivery WHERE claimed_by = 'replica-1' \
                 AND state = 'pending' AND claimed_until > now()",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                > 0
        }
    })
    .await;
    assert!(holding, "replica 1 never held a claim");
    replicas[1].child.kill().expect("SIGKILL");
    let _ = replicas[1].child.wait();
    receiver.delay(Duration::from_millis(100));
    let killed_holding: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM page_delivery WHERE claimed_by = 'replica-1' AND state = 'pending'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    send(PAGES / 2..PAGES, vec![bases[0].clone(), bases[2].clone()]).await;

    let done = eventually(Duration::from_secs(120), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM page_delivery WHERE state <> 'delivered'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                == 0
        }
    })
    .await;
    assert!(done, "deliveries left undelivered");

    let pages: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM consult_page")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(pages.len(), PAGES, "one page per triggering evaluation");
    let accepted = receiver.accepted_by_key();
    let keys: BTreeSet<String> = accepted.keys().cloned().collect();
    let expected: BTreeSet<String> = pages.iter().map(|p| p.to_string()).collect();
    assert_eq!(keys, expected, "every page arrived, and nothing else");
    let duplicates: usize = accepted.values().map(|n| n - 1).sum();
    // Replica 1's claims at the kill were delivered by the others.
    let taken_over: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT d.id, d.claimed_by FROM page_delivery d WHERE d.id = ANY($1)")
            .bind(&killed_holding)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!taken_over.is_empty());
    assert!(
        taken_over.iter().all(|(_, by)| by != "replica-1"),
        "{taken_over:?}"
    );
    let by_worker: Vec<(String, i64)> = sqlx::query_as(
        "SELECT worker, count(*) FROM page_attempt WHERE outcome = 'delivered' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    println!(
        "{PAGES} pages, {} keys received, {duplicates} duplicate deliveries (deduped by key), \
         {} claims of the killed replica taken over; delivered by worker: {by_worker:?}",
        keys.len(),
        taken_over.len()
    );
    pool.close().await;
}
