//! `lrt serve` and `lrt check-config` as an operator runs them (issue 11): every check comes
//! before the database is touched, so a start with a missing key file exits 2 naming the file
//! and leaves the schema as it was; `check-config` makes the same checks without starting;
//! `migrate --dry-run` lists and changes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lrt_engine::testing::repo_root;
use sqlx::Connection;

fn admin_url() -> String {
    std::env::var("LRT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A database of its own (dropped at the end) and its URL.
struct Db {
    name: String,
    url: String,
}

impl Db {
    fn create() -> Db {
        let name = format!("lrt_test_{}", uuid::Uuid::new_v4().simple());
        runtime().block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin_url())
                .await
                .expect("PostgreSQL for the tests");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
        });
        let mut url = url::Url::parse(&admin_url()).unwrap();
        url.set_path(&name);
        Db {
            name,
            url: url.to_string(),
        }
    }

    /// Whether the migrations table exists (the schema was touched).
    fn migrated(&self) -> bool {
        runtime().block_on(async {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let table: Option<String> =
                sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            table.is_some()
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let name = self.name.clone();
        runtime().block_on(async move {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        });
    }
}

fn config(dir: &Path, db: &Db, jwks_file: &Path) -> PathBuf {
    let path = dir.join("lrt.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\npublic_base_url = \"http://127.0.0.1:8080\"\n\
             database_url = \"{}\"\nrules_dir = \"{}\"\nmigrate_on_start = true\n\n\
             [[auth.issuers]]\niss = \"urn:lrt:test\"\njwks_file = \"{}\"\n",
            db.url,
            repo_root().join("rules").display(),
            jwks_file.display()
        ),
    )
    .unwrap();
    path
}

fn lrt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lrt"))
        .args(args)
        .env_remove("LRT_CONFIG")
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("lrt runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_missing_key_file_stops_serve_and_check_config_before_the_database_is_touched() {
    let db = Db::create();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-jwks.json");
    let file = config(dir.path(), &db, &missing);
    let file = file.to_str().unwrap();

    let serve = lrt(&["serve", "--config", file]);
    assert_eq!(serve.status.code(), Some(2), "{}", stderr(&serve));
    assert!(
        stderr(&serve).contains("missing-jwks.json"),
        "{}",
        stderr(&serve)
    );
    assert!(
        !db.migrated(),
        "serve migrated before checking its key files"
    );

    let check = lrt(&["check-config", "--config", file]);
    assert_eq!(check.status.code(), Some(2), "{}", stderr(&check));
    assert!(
        stderr(&check).contains("missing-jwks.json"),
        "{}",
        stderr(&check)
    );

    // With the key file: the checks pass, still without touching the database.
    std::fs::copy(
        repo_root().join("tests/fixtures/readme/test-only-dev-jwks.json"),
        &missing,
    )
    .unwrap();
    let check = lrt(&["check-config", "--config", file]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let summary: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(summary["status"], "ok");
    assert_eq!(summary["auth"]["issuers"][0], "urn:lrt:test");
    assert!(!db.migrated(), "check-config touched the database");

    // A broken rules folder named on the command line replaces the configuration's.
    let bad_rules = lrt(&[
        "check-config",
        "--config",
        file,
        "--rules-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(bad_rules.status.code(), Some(2), "{}", stderr(&bad_rules));
}

#[test]
fn migrate_dry_run_lists_the_migrations_and_applies_none() {
    let db = Db::create();
    let migrate = |extra: &[&str]| {
        let mut args = vec!["migrate"];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_lrt"))
            .args(&args)
            .env_remove("LRT_CONFIG")
            .env("DATABASE_URL", &db.url)
            .output()
            .expect("lrt runs")
    };
    let dry = migrate(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let listed = String::from_utf8_lossy(&dry.stdout).into_owned();
    let migrations = std::fs::read_dir(repo_root().join("migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    assert_eq!(listed.lines().count(), migrations, "{listed}");
    assert!(
        listed.lines().all(|l| l.starts_with("pending ")),
        "{listed}"
    );
    assert!(!db.migrated());

    let applied = migrate(&[]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    let again = migrate(&["--dry-run"]);
    let listed = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(
        listed.lines().all(|l| l.starts_with("applied ")),
        "{listed}"
    );
}

/// `lrt health` (the image's HEALTHCHECK): exit 1 while nothing answers, 0 once `lrt serve` is
/// ready, 1 again once it is gone; a URL that is not http(s) is bad input (exit 2).
#[test]
fn health_asks_a_running_serve_whether_it_is_ready() {
    let db = Db::create();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::copy(
        repo_root().join("tests/fixtures/readme/test-only-dev-jwks.json"),
        &jwks,
    )
    .unwrap();
    let file = config(dir.path(), &db, &jwks);
    // A port with nothing listening yet, for the service to take.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&file, text).unwrap();
    let ready_url = format!("http://127.0.0.1:{port}/health/ready");
    let health = || lrt(&["health", "--url", &ready_url, "--timeout-secs", "2"]);

    let before = health();
    assert_eq!(before.status.code(), Some(1), "{}", stderr(&before));
    assert!(stderr(&before).contains("no answer"), "{}", stderr(&before));

    let mut serve = Command::new(env!("CARGO_BIN_EXE_lrt"))
        .args(["serve", "--config", file.to_str().unwrap()])
        .env_remove("LRT_CONFIG")
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("lrt serve starts");
    let started = std::time::Instant::now();
    let mut last = health();
    while last.status.code() != Some(0) && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        last = health();
    }
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(last.status.code(), Some(0), "{}", stderr(&last));
    assert!(String::from_utf8_lossy(&last.stdout).starts_with("ready (200"));

    let after = health();
    assert_eq!(after.status.code(), Some(1), "{}", stderr(&after));

    let bad = lrt(&["health", "--url", "ftp://127.0.0.1/health"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}
