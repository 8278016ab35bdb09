//! Instruction counts of reading FHIR JSON (issue 9), for `valgrind --tool=callgrind`: every
//! MIMIC-IV demo transaction of `../shared` merged into one collection Bundle (86 patients,
//! 5,328 resources; the `parse_only` case of `benches/snapshot.rs`), read by
//! [`lrt_fhir::parse`] `N` times (argument 1, default 3) after a warming read.
//!
//! ```sh
//! CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p lrt-fhir --example parse_count
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='parse_count::measured_reads' \
//!     target/release/examples/parse_count 3
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! Instructions per resource = the collected total / (N × the resources printed).

use std::hint::black_box;

#[inline(never)]
fn measured_reads(json: &str, n: usize) -> usize {
    (0..n)
        .map(|_| {
            black_box(lrt_fhir::parse(black_box(json)).expect("the Bundle reads"))
                .resources
                .len()
        })
        .sum()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N, a number of reads"))
        .unwrap_or(3);
    let (json, resources) = lrt_engine::testing::mimic_collection_bundle();
    let warm = lrt_fhir::parse(&json).expect("the Bundle reads");
    assert_eq!(
        warm.resources.len(),
        resources,
        "every resource is readable"
    );
    let read = measured_reads(&json, n);
    println!(
        "{resources} resources, {} bytes, {n} reads measured ({read} resources read)",
        json.len()
    );
}
