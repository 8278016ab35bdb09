//! **Development and tests only**: the real peers `lrt demo` and the end-to-end tests start
//! beside the service. Never used by `lrt serve`.
//!
//! * [`fhir_server`]: Helios FHIR Server (`hfs`) as a child process, loaded with the MIMIC-IV
//!   demo patients;
//! * [`postgres`]: a throw-away PostgreSQL cluster from the system's binaries (`initdb`,
//!   `pg_ctl`), for a demo without `DATABASE_URL`.

pub mod fhir_server;
pub mod postgres;

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
