//! The real FHIR server of the end-to-end tests: [`lrt_server::dev::fhir_server`] (Helios FHIR
//! Server as a child process) with the repository's paths. A missing binary fails the test with
//! the instruction to run `make tools`: the suite never skips the real server.

use std::time::Duration;

use lrt_engine::testing::{repo_root, shared_dir};
use lrt_fhir::FhirClient;
use lrt_server::dev::fhir_server::{self, FhirServer as Hfs};

/// A running hfs; stopped (killed) when dropped.
pub struct FhirServer {
    inner: Hfs,
    pub base: String,
}

impl FhirServer {
    /// Starts hfs on a free port and waits until it listens.
    pub fn start() -> FhirServer {
        let inner = Hfs::start(&fhir_server::hfs_binary(&repo_root()), &shared_dir())
            .unwrap_or_else(|e| panic!("{e}"));
        let base = inner.base.clone();
        FhirServer { inner, base }
    }

    pub fn client(&self) -> FhirClient {
        self.inner.client(Duration::from_secs(5))
    }

    /// Loads the MIMIC-IV demo transaction Bundles (one per patient); returns how many.
    pub async fn load_mimic(&self) -> usize {
        self.inner
            .load_mimic(&shared_dir())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
