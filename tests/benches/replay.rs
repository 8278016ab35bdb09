//! `cargo bench -p lrt-e2e --bench replay` (in `make bench`): `lrt replay`'s evaluation on ONE
//! thread, the engine on snapshots already in memory: every arterial blood gas of the MIMIC-IV
//! demo replay set (706 snapshots, built once with rule set 0.2.0's FHIR mapping) evaluated
//! under 0.2.0 as `lrt replay` does it (the outcome columns included). Criterion reports the
//! throughput in snapshots per second (issue 10: at least 10,000 on one core). A second
//! figure builds each snapshot from the Bundle as well (what `lrt replay --bundle` does per
//! blood gas).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lrt_engine::RuleSet;
use lrt_engine::testing::{repo_root, shared_dir};
use lrt_server::service::replay::inputs::BundleRecord;
use lrt_server::service::replay::outcome::{Outcome, par_map};

fn bench(c: &mut Criterion) {
    let rules = RuleSet::load(&repo_root().join("rules/lrt-ruleset/0.2.0")).expect("0.2.0 loads");
    let text = std::fs::read_to_string(
        shared_dir().join("data/mimic-iv-demo-fhir/mimic-iv-demo-icu-resp.transactions.ndjson"),
    )
    .expect("the MIMIC replay set");
    let mut collected = lrt_fhir::Collected::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        collected.add(lrt_fhir::parse(line).expect("a Bundle"));
    }
    let record = BundleRecord::new(&collected, String::new(), &collected.patient_ids());
    let gases = record.blood_gases(&rules);
    assert_eq!(gases.len(), 706, "every arterial blood gas of the demo");
    let snapshots: Vec<_> = gases
        .iter()
        .map(|g| (record.snapshot(&rules, g), g.at))
        .collect();

    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(snapshots.len() as u64));
    group.sample_size(10);
    group.bench_function("mimic_706_snapshots/evaluate/1_thread", |b| {
        b.iter(|| {
            par_map(black_box(&snapshots), 1, |(s, at)| {
                Outcome::evaluate(&rules, s, *at)
            })
        })
    });
    group.bench_function("mimic_706_snapshots/build_and_evaluate/1_thread", |b| {
        b.iter(|| {
            par_map(black_box(&gases), 1, |g| {
                Outcome::evaluate(&rules, &record.snapshot(&rules, g), g.at)
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
