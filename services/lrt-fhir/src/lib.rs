//! # lrt-fhir
//!
//! FHIR R4 in: from the EHR's resources (CDS Hooks prefetch, FHIR searches or a Bundle file) to
//! the engine's [`lrt_engine::PatientSnapshot`].
//!
//! * [`bundle`]: a payload (Bundle or single resource) into records, one resource at a time, so
//!   a bad resource becomes an `unreadable:<type>/<id>` warning instead of an error;
//! * [`read`]: the fhirbolt boundary (R4 model, compatibility mode: unknown fields and extensions
//!   are ignored); nothing outside this crate sees fhirbolt types;
//! * [`mapping`]: records into the snapshot, with the rule set's value sets and code sets
//!   deciding which code means what;
//! * [`search`]: what to search for a patient at a time, derived from the rule set;
//! * [`client`]: the FHIR REST client (bearer token, timeouts, bounded retries, paging that never
//!   leaves the server);
//! * [`fetch`]: a patient's data by concurrent searches, ready for the mapping;
//! * [`replay`]: a record replayed at every arterial blood gas;
//! * [`time`]: FHIR dates with partial precision.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod client;
pub mod fetch;
pub mod mapping;
pub mod project;
pub mod read;
pub mod replay;
pub mod search;
pub mod smart;
pub mod subscription;
pub mod time;

pub use bundle::{Payload, PayloadError, parse};
pub use client::{ClientConfig, FhirClient, FhirError};
pub use fetch::{Fetched, fetch_patient, fetch_patient_unwindowed};
pub use mapping::{Collected, MapOptions, Searched, build_snapshot};

/// Runs CPU-bound reading (a large payload's JSON and FHIR parse) without holding up the async
/// runtime: on a multi-threaded Tokio runtime the worker hands its other tasks over first
/// (`block_in_place`); elsewhere (a current-thread runtime, no runtime) it runs inline.
pub fn cpu_bound<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Payloads shorter than this are read inline by [`cpu_bound_sized`]. Handing a Tokio worker
/// over (`block_in_place` after the task has awaited I/O) costs about 12 µs, as much as reading
/// a few kilobytes; 64 KiB of FHIR JSON takes well under a millisecond to read.
pub const READ_INLINE_BELOW: usize = 64 * 1024;

/// [`cpu_bound`] for reading a payload of `bytes` bytes: inline when it is shorter than
/// [`READ_INLINE_BELOW`], so small payloads do not pay for handing the worker over.
pub fn cpu_bound_sized<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    if bytes < READ_INLINE_BELOW {
        f()
    } else {
        cpu_bound(f)
    }
}
