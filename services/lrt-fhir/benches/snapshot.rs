//! `cargo bench -p lrt-fhir`: the time to build a patient snapshot from a 5,000-resource Bundle.
//!
//! The Bundle is every MIMIC-IV demo transaction of `../shared/data/mimic-iv-demo-fhir` merged
//! into one collection Bundle (86 patients, 5,328 resources), as a site's bulk export or a large
//! `lrt evaluate --bundle` file would be. Measured:
//! * `parse_and_build`: JSON text to snapshot (parse every entry through fhirbolt, map one
//!   patient: `mimic-10039708`, the largest record: 354 resources of its own, 160 of them
//!   observations the rule set maps);
//! * `build_only`: the mapping alone, the resources already read (what a prefetch of that size
//!   costs after parsing);
//! * `parse_only`: the Bundle's reading alone.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lrt_engine::RuleSet;
use lrt_fhir::{Collected, MapOptions, build_snapshot, parse};

const PATIENT: &str = "mimic-10039708";

fn bench(c: &mut Criterion) {
    let rules =
        RuleSet::load(&lrt_engine::testing::shipped_version_dir()).expect("the shipped rule set");
    let (json, n) = lrt_engine::testing::mimic_collection_bundle();
    assert!(n >= 5000, "the merged Bundle has {n} resources");
    let payload = parse(&json).expect("the merged Bundle reads");
    assert_eq!(payload.resources.len(), n, "every resource is readable");
    let mut collected = Collected::default();
    collected.add(payload);
    let now = collected
        .newest_observation(PATIENT)
        .expect("the patient has observations");
    let opts = MapOptions {
        searched: collected.present_kinds(PATIENT),
        warn_other_patients: false,
    };
    let snapshot = build_snapshot(&rules, &collected, PATIENT, now, opts);
    assert!(
        snapshot.observations.len() > 100,
        "{} observations",
        snapshot.observations.len()
    );
    eprintln!(
        "Bundle: {n} resources, {} bytes; snapshot of {PATIENT}: {} observations",
        json.len(),
        snapshot.observations.len()
    );

    let mut g = c.benchmark_group("bundle_5328");
    g.sample_size(20);
    g.bench_function("parse_and_build", |b| {
        b.iter(|| {
            let mut collected = Collected::default();
            collected.add(parse(black_box(&json)).unwrap());
            let now = collected.newest_observation(PATIENT).unwrap();
            build_snapshot(&rules, &collected, PATIENT, now, opts)
        })
    });
    g.bench_function("build_only", |b| {
        b.iter(|| build_snapshot(&rules, black_box(&collected), PATIENT, now, opts))
    });
    g.bench_function("parse_only", |b| {
        b.iter(|| parse(black_box(&json)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
