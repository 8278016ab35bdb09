//! The service under test: a fresh PostgreSQL database per test (on the local server, or
//! `LRT_TEST_DATABASE_URL`), the app built exactly as `lrt serve` builds it and served on a
//! random port, and a CDS client that signs ES384 JWTs with a key published as a JWK Set by a
//! real local HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;

use lrt_engine::testing::repo_root;
use lrt_server::service::{App, Config};
use sqlx::Connection;
use uuid::Uuid;

/// The server that hosts the test databases (its user must be allowed to create databases).
pub fn admin_url() -> String {
    std::env::var("LRT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own for one test, dropped at the end.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin = admin_url();
        let name = format!("lrt_test_{}", Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL for the tests ({admin}): {e} (run `make tools`)")
            });
        // `name` is made here of a fixed prefix and a UUID: no injection possible.
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let mut url = url::Url::parse(&admin).expect("a database URL");
        url.set_path(&name);
        TestDb {
            url: url.to_string(),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop on a thread of its own: Drop cannot await, and the test's runtime may be gone.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A running service.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub db: TestDb,
    pub pool: sqlx::PgPool,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

/// A configuration for tests: loopback, the repository's rules, no auth section (set one).
pub fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        rules_dir: repo_root().join("rules"),
        ..Config::default()
    }
}

impl TestApp {
    /// Builds the app with `edit` applied to the test configuration and serves it.
    pub async fn spawn(edit: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::create().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = test_config();
        config.public_base_url = format!("http://{addr}");
        config.database_url = Some(db.url.clone());
        edit(&mut config);
        config.check().expect("a valid test configuration");
        let app = App::build(config).await.expect("the app builds");
        let pool = app.state.pool.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.serve(listener, async move {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestApp {
            addr,
            base: format!("http://{addr}"),
            db,
            pool,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The service paging to `pager`'s webhook (its secret in a file of the returned folder;
    /// the dispatcher polls every 50 ms), evaluating at the newest blood gas (synthetic and
    /// MIMIC patients), with `edit` applied last.
    pub async fn spawn_paging_to(
        pager: &crate::pager::PagerReceiver,
        edit: impl FnOnce(&mut Config),
    ) -> (TestApp, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let secret = dir.path().join("webhook-secret");
        std::fs::write(&secret, &pager.secret).expect("the secret file");
        let url = pager.url.clone();
        let app = TestApp::spawn(move |c| {
            c.evaluation_time = lrt_server::service::config::EvaluationTime::NewestBloodGas;
            c.paging.webhook = Some(lrt_server::service::paging::WebhookConfig {
                url,
                secret_file: Some(secret),
                secret_env: None,
                timeout_ms: 2_000,
            });
            c.paging.poll_interval_ms = 50;
            edit(c);
        })
        .await;
        (app, dir)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops serving (in-flight requests finish).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// A file path inside the repository.
/// The `lrt` binary of this build (`target/<profile>/lrt`), for the tests that run the CLI.
pub fn lrt_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join("lrt");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p lrt-server` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

pub fn repo_file(path: &str) -> PathBuf {
    repo_root().join(path)
}
