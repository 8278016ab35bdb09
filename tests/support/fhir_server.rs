//! A real FHIR server for the end-to-end tests: Helios FHIR Server (`hfs`, crates.io
//! `helios-hfs`, MIT) as a child process on a free port, with a throw-away SQLite database, its
//! search parameters from `../shared/data/hfs-data`, and the MIMIC-IV demo patients loaded by
//! transaction.
//!
//! The binary comes from `LRT_HFS_BIN`, else `target/tools/bin/hfs` (installed by `make tools`,
//! which `make test` runs). A missing binary fails the test with that instruction: the suite
//! never skips the real server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lrt_engine::testing::{repo_root, shared_dir};
use lrt_fhir::{ClientConfig, FhirClient};

/// The hfs binary to run.
pub fn hfs_binary() -> PathBuf {
    let path = std::env::var_os("LRT_HFS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/tools/bin/hfs"));
    assert!(
        path.is_file(),
        "the FHIR server binary is missing at {} (run `make tools`, or set LRT_HFS_BIN)",
        path.display()
    );
    path
}

/// A running hfs; stopped (killed) when dropped.
pub struct FhirServer {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl FhirServer {
    /// Starts hfs on a free port and waits until `/metadata` answers (at most 60 s).
    pub fn start() -> FhirServer {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("hfs.log")).expect("a log file");
        let child = Command::new(hfs_binary())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--base-url",
                &base,
                "--log-level",
                "warn",
            ])
            .arg("--data-dir")
            .arg(shared_dir().join("data/hfs-data"))
            .arg("--database-url")
            .arg(dir.path().join("fhir.db"))
            .arg("--max-page-size")
            .arg("1000")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("hfs starts");
        let server = FhirServer {
            child,
            base,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "hfs did not listen on {} within 60 s",
                server.base
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn client(&self) -> FhirClient {
        FhirClient::new(&self.base, None, ClientConfig::default())
            .expect("a client for the local server")
    }

    /// Loads the MIMIC-IV demo transaction Bundles (one per patient); returns how many.
    pub async fn load_mimic(&self) -> usize {
        let path =
            shared_dir().join("data/mimic-iv-demo-fhir/mimic-iv-demo-icu-resp.transactions.ndjson");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let client = FhirClient::new(
            &self.base,
            None,
            ClientConfig {
                timeout: Duration::from_secs(120),
                ..ClientConfig::default()
            },
        )
        .expect("a loading client");
        let mut n = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            client
                .transaction(line)
                .await
                .unwrap_or_else(|e| panic!("loading a MIMIC transaction: {e}"));
            n += 1;
        }
        n
    }
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
