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
use std::path::PathBuf;

fn merged_bundle() -> (String, usize) {
    let shared = std::env::var_os("LRT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = shared.join("data/mimic-iv-demo-fhir/mimic-iv-demo-icu-resp.transactions.ndjson");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut bundle: serde_json::Value = serde_json::from_str(line).expect("a transaction");
        for mut entry in bundle["entry"].as_array_mut().expect("entries").drain(..) {
            entry.as_object_mut().expect("an entry").remove("request");
            entries.push(entry);
        }
    }
    let n = entries.len();
    let bundle =
        serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
    (bundle.to_string(), n)
}

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
    let (json, resources) = merged_bundle();
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
