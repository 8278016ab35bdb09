//! The `lrt` service as a library: [`service`] holds `lrt serve` (CDS Hooks 2.0, the evaluations
//! API, persistence, authentication, telemetry). The binary (`src/main.rs`) adds the CLI; tests
//! build the same [`service::App`] on a random port with a fresh database.
#![forbid(unsafe_code)]

pub mod dev;
pub mod service;
