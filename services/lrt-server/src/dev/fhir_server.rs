//! Helios FHIR Server (`hfs`, crates.io `helios-hfs`, MIT) as a child process on a free port,
//! with a throw-away SQLite database and its search parameters from
//! `../shared/data/hfs-data`; the MIMIC-IV demo patients loaded by transaction. Installed by
//! `make tools` once per machine into `~/.cache/lrt-cds/tools/helios-hfs-<version>/bin/hfs`
//! (`$XDG_CACHE_HOME` honoured; or `LRT_HFS_BIN`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lrt_fhir::{ClientConfig, FhirClient, FhirError};

/// Why the FHIR server could not be started or loaded.
#[derive(Debug, thiserror::Error)]
pub enum FhirServerError {
    #[error("the FHIR server binary is missing at {0} (run `make tools`, or set LRT_HFS_BIN)")]
    Missing(PathBuf),
    #[error("the FHIR server: {0}")]
    Io(#[from] std::io::Error),
    #[error("the FHIR server did not listen on {0} within 60 s")]
    NotListening(String),
    #[error("{path}: {source}")]
    Data {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("loading a MIMIC transaction: {0}")]
    Load(#[from] FhirError),
}

/// The hfs version `make tools` installs (keep in step with `HFS_VERSION` in the Makefile).
pub const HFS_VERSION: &str = "0.2.7";

/// The hfs binary: `LRT_HFS_BIN`, else the per-machine tools cache of `make tools`, else
/// `<repo>/target/tools/bin/hfs` (where older checkouts installed it).
pub fn hfs_binary(repo: &Path) -> PathBuf {
    if let Some(bin) = std::env::var_os("LRT_HFS_BIN") {
        return PathBuf::from(bin);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    cache
        .map(|c| c.join(format!("lrt-cds/tools/helios-hfs-{HFS_VERSION}/bin/hfs")))
        .filter(|b| b.is_file())
        .unwrap_or_else(|| repo.join("target/tools/bin/hfs"))
}

/// A running hfs; killed when dropped.
pub struct FhirServer {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl FhirServer {
    /// Starts `binary` with the search parameters of `shared/data/hfs-data` and waits until
    /// it listens (at most 60 s).
    pub fn start(binary: &Path, shared: &Path) -> Result<FhirServer, FhirServerError> {
        if !binary.is_file() {
            return Err(FhirServerError::Missing(binary.to_path_buf()));
        }
        let dir = tempfile::tempdir()?;
        let port = super::free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("hfs.log"))?;
        // hfs runs under a small shell watchdog that stops it when this process is gone, even
        // if this process never drops the handle (a test binary's static, a SIGKILL).
        let watchdog = r#"parent=$1; shift; "$@" & child=$!
trap 'kill "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
kill "$child" 2>/dev/null; wait "$child""#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(watchdog)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--base-url", &base, "--log-level", "warn"])
            .arg("--data-dir")
            .arg(shared.join("data/hfs-data"))
            .arg("--database-url")
            .arg(dir.path().join("fhir.db"))
            .args(["--max-page-size", "1000"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let server = FhirServer {
            child,
            base,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(FhirServerError::NotListening(server.base.clone()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// A client for this server (no token: the local server is open).
    pub fn client(&self, timeout: Duration) -> FhirClient {
        FhirClient::new(
            &self.base,
            None,
            ClientConfig {
                timeout,
                ..ClientConfig::default()
            },
        )
        .expect("the local server's URL is a valid FHIR base")
    }

    /// Loads the MIMIC-IV demo transaction Bundles of `shared`; returns how many.
    pub async fn load_mimic(&self, shared: &Path) -> Result<usize, FhirServerError> {
        let path =
            shared.join("data/mimic-iv-demo-fhir/mimic-iv-demo-icu-resp.transactions.ndjson");
        let text = std::fs::read_to_string(&path).map_err(|source| FhirServerError::Data {
            path: path.clone(),
            source,
        })?;
        let client = self.client(Duration::from_secs(120));
        let mut n = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            client.transaction(line).await?;
            n += 1;
        }
        Ok(n)
    }
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        // SIGTERM lets the watchdog stop hfs; SIGKILL would orphan it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
