//! A throw-away PostgreSQL cluster from the system's binaries (Debian's `postgresql` package:
//! `/usr/lib/postgresql/<version>/bin`), on a free port, in a temporary folder; stopped and
//! removed when dropped. PostgreSQL refuses to run as root, so as root the cluster runs as the
//! `postgres` user (`runuser`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why no cluster could be started.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error(
        "no PostgreSQL binaries under /usr/lib/postgresql (install Debian's postgresql package: deploy/dev/ensure-postgres.sh), or set DATABASE_URL"
    )]
    NoBinaries,
    #[error("{step}: {message}")]
    Step { step: &'static str, message: String },
    #[error("PostgreSQL: {0}")]
    Io(#[from] std::io::Error),
}

/// A running throw-away cluster.
pub struct TempCluster {
    pub url: String,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    /// `postgres` options (port, socket folder) and log file, to start it again.
    options: String,
    log: String,
    _dir: tempfile::TempDir,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(
    as_postgres: bool,
    program: &Path,
    args: &[&str],
    step: &'static str,
) -> Result<(), PostgresError> {
    let output = if as_postgres {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args)
            .output()?
    } else {
        Command::new(program).args(args).output()?
    };
    if output.status.success() {
        Ok(())
    } else {
        Err(PostgresError::Step {
            step,
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

impl TempCluster {
    /// initdb (trust authentication, user `postgres`), then start on a free port.
    pub fn start() -> Result<TempCluster, PostgresError> {
        let bin = bin_dir().ok_or(PostgresError::NoBinaries)?;
        let dir = tempfile::Builder::new().prefix("lrt-demo-pg").tempdir()?;
        let as_postgres = is_root();
        if as_postgres {
            run(
                false,
                Path::new("chown"),
                &["postgres:postgres", &dir.path().display().to_string()],
                "chown",
            )?;
        }
        let data = dir.path().join("data");
        let data_s = data.display().to_string();
        run(
            as_postgres,
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            "initdb",
        )?;
        let port = super::free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        let log = dir.path().join("postgres.log").display().to_string();
        run(
            as_postgres,
            &bin.join("pg_ctl"),
            &["-D", &data_s, "-o", &options, "-l", &log, "-w", "start"],
            "pg_ctl start",
        )?;
        Ok(TempCluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            data,
            as_postgres,
            options,
            log,
            _dir: dir,
        })
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: connections are cut, as when the
    /// database host fails). For tests of the service with its database down.
    pub fn stop(&self) -> Result<(), PostgresError> {
        let data = self.data.display().to_string();
        run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "-w", "stop"],
            "pg_ctl stop",
        )
    }

    /// Starts the stopped server again, on the same port.
    pub fn start_again(&self) -> Result<(), PostgresError> {
        let data = self.data.display().to_string();
        run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &data,
                "-o",
                &self.options,
                "-l",
                &self.log,
                "-w",
                "start",
            ],
            "pg_ctl start",
        )
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let _ = run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            "pg_ctl stop",
        );
    }
}
