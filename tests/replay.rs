//! `lrt replay` (issue 10, item 2), end to end: the `lrt` binary against a database of its own.
//!
//! * stored sources: evaluations written by real CDS Hooks calls, replayed under 0.1.0; each
//!   outcome row is compared with the engine run here on the stored snapshot, and its `source_*`
//!   columns with the stored evaluation;
//! * bundles: one outcome per arterial PaO2 at its time (a synthetic record and a MIMIC-IV demo
//!   patient, whose blood gases are counted here from the FHIR JSON itself);
//! * resume: a run cut short (outcomes missing, the run left `running` or `failed`) ends with
//!   every outcome exactly once and `done` = `planned`; a finished run is not redone;
//! * bad input exits 2 with a message naming what is wrong;
//! * retention: replay outcomes lose their patient ids after `patient_data_days`, runs go after
//!   `row_days`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lrt_e2e::service::{TestApp, TestDb, lrt_binary};
use lrt_e2e::synthetic::{self, BORDERLINE, ELIGIBLE, STABLE, patient_view};
use lrt_engine::testing::{repo_root, shared_dir};
use lrt_engine::{PatientSnapshot, RuleSet};
use lrt_server::service::config::EvaluationTime;
use lrt_server::service::replay::inputs::BundleRecord;
use lrt_server::service::replay::{
    self, BundleFile, Inputs, Replay, RunParameters, Silent, SourceParameters,
};
use lrt_server::service::retention::{self, RetentionConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

const PV: &str = "/cds-services/lrt-patient-view";
const MIMIC: &str = "data/mimic-iv-demo-fhir/mimic-iv-demo-icu-resp.transactions.ndjson";

fn lrt(args: &[&str]) -> Output {
    Command::new(lrt_binary())
        .args(args)
        .current_dir(repo_root())
        .env_remove("LRT_RULES_DIR")
        .env_remove("LRT_CONFIG")
        .env_remove("DATABASE_URL")
        .env_remove("LRT_DATABASE_URL")
        .output()
        .expect("lrt runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `lrt replay ... --json` and returns its summary (exit 0 required).
fn replay_json(args: &[&str]) -> Value {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = lrt(&all);
    assert!(out.status.success(), "{all:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("the summary as JSON")
}

fn rules(version: &str) -> RuleSet {
    RuleSet::load(&repo_root().join("rules/lrt-ruleset").join(version)).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An outcome row as the test compares it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Row {
    source_key: String,
    source_evaluation_id: Option<Uuid>,
    patient_id: String,
    evaluated_at: DateTime<Utc>,
    ecmo_category: Option<String>,
    ecmo_urgency: Option<String>,
    berlin_category: Option<String>,
    pf_ratio: Option<f64>,
    recommendations: Vec<String>,
    consult_triggers: Vec<String>,
    source_ruleset_version: Option<String>,
    source_ecmo_category: Option<String>,
    source_ecmo_urgency: Option<String>,
    source_consult_triggers: Option<Vec<String>>,
}

async fn rows(pool: &PgPool, run: &str) -> Vec<Row> {
    sqlx::query_as(
        "SELECT source_key, source_evaluation_id, patient_id, evaluated_at, ecmo_category, \
           ecmo_urgency, berlin_category, pf_ratio, recommendations, consult_triggers, \
           source_ruleset_version, source_ecmo_category, source_ecmo_urgency, source_consult_triggers \
         FROM replay_outcome WHERE run_id = $1::uuid ORDER BY source_key",
    )
    .bind(run)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// `planned`, `done`, `state` of a run.
async fn run_state(pool: &PgPool, run: &str) -> (Option<i32>, i32, String) {
    sqlx::query_as("SELECT planned, done, state FROM replay_run WHERE id = $1::uuid")
        .bind(run)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// What the engine says here for one input (the oracle of the outcome columns).
fn engine_row(rules: &RuleSet, snapshot: &PatientSnapshot, at: DateTime<Utc>) -> Row {
    let a = lrt_engine::evaluate(rules, snapshot, at);
    Row {
        source_key: String::new(),
        source_evaluation_id: None,
        patient_id: String::new(),
        evaluated_at: at,
        ecmo_category: a.ecmo_category.as_deref().map(str::to_string),
        ecmo_urgency: a.ecmo_urgency.map(|u| u.name().to_string()),
        berlin_category: a.berlin_category.as_deref().map(str::to_string),
        pf_ratio: a.pf_ratio,
        recommendations: a.recommendations.iter().map(|r| r.to_string()).collect(),
        consult_triggers: a
            .consult_triggers
            .iter()
            .map(|t| t.code.to_string())
            .collect(),
        source_ruleset_version: None,
        source_ecmo_category: None,
        source_ecmo_urgency: None,
        source_consult_triggers: None,
    }
}

/// A stored active evaluation: id, patient, evaluated_at, snapshot, ECMO category, urgency and
/// consult triggers.
type StoredRow = (
    Uuid,
    String,
    DateTime<Utc>,
    Value,
    Option<String>,
    Option<String>,
    Value,
);

async fn call(app: &TestApp, body: &Value) {
    let res = app
        .http
        .post(app.url(PV))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_evaluations_replayed_under_another_version_keep_their_source_and_resume() {
    lrt_fhir::client::install_crypto_provider();
    let app = TestApp::spawn(|c| {
        c.insecure_no_auth = true;
        c.evaluation_time = EvaluationTime::NewestBloodGas;
    })
    .await;
    for (patient, gases) in [
        ("rp-borderline", BORDERLINE),
        ("rp-eligible", ELIGIBLE),
        ("rp-stable", STABLE),
        ("rp-borderline-2", BORDERLINE),
    ] {
        call(&app, &patient_view(patient, gases)).await;
    }
    // Not known to be ventilated (no Procedure): 0.2.0 does not screen such a patient for ECMO
    // (knowledge base §9 D1), 0.1.0 does: the replay under 0.1.0 changes its outcome.
    let mut unventilated = patient_view("rp-unventilated", BORDERLINE);
    unventilated["prefetch"]["Procedure"] =
        json!({"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []});
    call(&app, &unventilated).await;
    // The oracle: 0.1.0 run here on each stored active snapshot at its evaluated_at, and the
    // stored evaluation's own outcome.
    let v010 = rules("0.1.0");
    let stored: Vec<StoredRow> = sqlx::query_as(
        "SELECT id, patient_id, evaluated_at, snapshot, ecmo_category, \
               assessment->>'ecmo_urgency', assessment->'consult_triggers' \
             FROM evaluation WHERE role = 'active' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), 5);
    let mut expected: Vec<Row> = stored
        .iter()
        .map(|(id, patient, at, snapshot, category, urgency, triggers)| {
            let snapshot: PatientSnapshot = serde_json::from_value(snapshot.clone()).unwrap();
            Row {
                source_key: id.to_string(),
                source_evaluation_id: Some(*id),
                patient_id: patient.clone(),
                source_ruleset_version: Some("0.2.0".into()),
                source_ecmo_category: category.clone(),
                source_ecmo_urgency: urgency.clone(),
                source_consult_triggers: Some(
                    triggers
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t["code"].as_str().unwrap().to_string())
                        .collect(),
                ),
                ..engine_row(&v010, &snapshot, *at)
            }
        })
        .collect();
    expected.sort_by(|a, b| a.source_key.cmp(&b.source_key));
    // The synthetic patients under 0.2.0 (what they were written for).
    let by_patient: BTreeMap<&str, Option<&str>> = expected
        .iter()
        .map(|r| (r.patient_id.as_str(), r.source_ecmo_category.as_deref()))
        .collect();
    assert_eq!(by_patient["rp-eligible"], Some("eligible"));
    assert_eq!(by_patient["rp-borderline"], Some("borderline"));

    let url = app.db.url.clone();
    let window = [
        "--database-url",
        &url,
        "--from",
        "2020-01-01T00:00:00Z",
        "--to",
        "2200-01-01T00:00:00Z",
    ];
    let mut args = window.to_vec();
    args.extend(["--ruleset", "0.1.0"]);
    let summary = replay_json(&args);
    let run = summary["run_id"].as_str().unwrap().to_string();
    assert_eq!(summary["source"], "stored");
    assert_eq!(summary["state"], "finished");
    assert_eq!(summary["ruleset"]["version"], "0.1.0");
    assert_eq!(summary["ruleset"]["sha256"], v010.sha256.as_str());
    assert_eq!(
        (&summary["inputs"], &summary["done"], &summary["written"]),
        (&json!(5), &json!(5), &json!(5))
    );
    let got = rows(&app.pool, &run).await;
    assert_eq!(got, expected);

    // The summary's counts, worked out from the oracle.
    let mut categories: BTreeMap<String, u64> = BTreeMap::new();
    let (mut category, mut urgency, mut triggers, mut any) = (0, 0, 0, 0);
    for r in &expected {
        *categories
            .entry(r.ecmo_category.clone().unwrap_or("none".into()))
            .or_default() += 1;
        let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
        let c = r.ecmo_category != r.source_ecmo_category;
        let u = r.ecmo_urgency != r.source_ecmo_urgency;
        let t = set(&r.consult_triggers) != set(r.source_consult_triggers.as_deref().unwrap());
        category += u64::from(c);
        urgency += u64::from(u);
        triggers += u64::from(t);
        any += u64::from(c || u || t);
    }
    assert_eq!(summary["categories"], json!(categories));
    assert!(any >= 1, "the versions differ on the unventilated patient");
    let changed = &summary["changed"];
    assert_eq!(changed["compared"], 5);
    assert_eq!(
        [
            &changed["category"],
            &changed["urgency"],
            &changed["consult_triggers"],
            &changed["any"]
        ],
        [
            &json!(category),
            &json!(urgency),
            &json!(triggers),
            &json!(any)
        ],
        "{summary:#}"
    );
    eprintln!("0.2.0 → 0.1.0 on the stored evaluations: {changed}");

    let (parameters, ruleset_id, started, finished, error): (
        Value,
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT parameters, ruleset_id, started_at, finished_at, error FROM replay_run WHERE id = $1::uuid",
    )
    .bind(&run)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        parameters,
        json!({"ruleset": "0.1.0", "source": "stored", "from": "2020-01-01T00:00:00Z",
               "to": "2200-01-01T00:00:00Z", "patient": null, "source_version": null})
    );
    assert_eq!(ruleset_id, "lrt-ruleset");
    assert!(finished.is_some_and(|f| f >= started));
    assert_eq!(error, None);
    assert_eq!(
        run_state(&app.pool, &run).await,
        (Some(5), 5, "finished".into())
    );

    // Filters: one patient of version 0.2.0; no evaluation was made by 0.1.0 (the shadow).
    let mut one = window.to_vec();
    one.extend(["--patient", "rp-eligible", "--source-version", "0.2.0"]);
    let s = replay_json(&one);
    assert_eq!((&s["inputs"], &s["written"]), (&json!(1), &json!(1)));
    let only = rows(&app.pool, s["run_id"].as_str().unwrap()).await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].patient_id, "rp-eligible");
    // Without --ruleset: the active version (0.2.0) agrees with what it stored.
    assert_eq!(s["ruleset"]["version"], "0.2.0");
    assert_eq!(s["changed"]["any"], 0, "{s:#}");
    let mut none = window.to_vec();
    none.extend(["--source-version", "0.1.0"]);
    let s = replay_json(&none);
    assert_eq!((&s["inputs"], &s["done"]), (&json!(0), &json!(0)));

    // The text summary: the category and changed tables.
    let mut text_args = vec!["replay"];
    text_args.extend_from_slice(&args);
    let out = lrt(&text_args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| ECMO category | outcomes |"), "{text}");
    assert!(
        text.contains("| changed against the stored evaluation (5 compared) | outcomes |"),
        "{text}"
    );
    assert!(
        text.contains(&format!("| any of these | {any} |")),
        "{text}"
    );
    // Not a terminal: plain progress lines, no bar.
    assert!(
        stderr(&out).contains("replay: 5 inputs, 0 already done"),
        "{}",
        stderr(&out)
    );

    // Resume: the first run cut short (three outcomes lost, the run failed) is completed.
    sqlx::query(
        "DELETE FROM replay_outcome WHERE run_id = $1::uuid AND source_key IN \
           (SELECT source_key FROM replay_outcome WHERE run_id = $1::uuid ORDER BY source_key LIMIT 3)",
    )
    .bind(&run)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE replay_run SET state = 'failed', done = 2, error = 'database: connection lost' \
         WHERE id = $1::uuid",
    )
    .bind(&run)
    .execute(&app.pool)
    .await
    .unwrap();
    let s = replay_json(&["--database-url", &url, "--resume", &run]);
    assert_eq!(s["run_id"], run.as_str());
    assert_eq!(
        (&s["written"], &s["skipped_already_done"], &s["done"]),
        (&json!(3), &json!(2), &json!(5))
    );
    assert_eq!(rows(&app.pool, &run).await, expected);
    assert_eq!(
        run_state(&app.pool, &run).await,
        (Some(5), 5, "finished".into())
    );
    assert_eq!(s["changed"], summary["changed"]);
}

/// A record of two synthetic patients as NDJSON (one transaction Bundle per line).
fn synthetic_ndjson(dir: &Path) -> std::path::PathBuf {
    let lines = [
        synthetic::transaction("rb-eligible", "g", ELIGIBLE).to_string(),
        synthetic::transaction("rb-stable", "g", STABLE).to_string(),
    ];
    let path = dir.join("record.ndjson");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The times of a patient's arterial PaO2 Observations (LOINC 2703-7), read from the JSON.
fn pao2_times(bundle: &Value) -> BTreeSet<DateTime<Utc>> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| {
            r["resourceType"] == "Observation"
                && r["code"]["coding"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["code"] == "2703-7"))
        })
        .map(|r| r["effectiveDateTime"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_gives_one_outcome_per_arterial_pao2_at_its_time() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic_ndjson(dir.path());
    let sha = sha256_hex(&std::fs::read(&path).unwrap());
    let file = path.to_str().unwrap();
    let summary = replay_json(&[
        "--database-url",
        &db.url,
        "--bundle",
        file,
        "--ruleset",
        "0.2.0",
    ]);
    assert_eq!(summary["source"], "bundle");
    assert_eq!(
        (&summary["inputs"], &summary["done"]),
        (&json!(4), &json!(4))
    );
    assert!(summary.get("changed").is_none(), "nothing to compare with");
    let run = summary["run_id"].as_str().unwrap();
    let got = rows(&pool, run).await;
    let v020 = rules("0.2.0");
    let mut collected = lrt_fhir::Collected::default();
    for line in std::fs::read_to_string(&path).unwrap().lines() {
        collected.add(lrt_fhir::parse(line).unwrap());
    }
    let mut expected = Vec::new();
    for (patient, gases) in [("rb-eligible", ELIGIBLE), ("rb-stable", STABLE)] {
        for (time, _, _) in gases {
            let at: DateTime<Utc> = time.parse().unwrap();
            let opts = lrt_fhir::replay::file_options(&collected, patient);
            let snapshot = lrt_fhir::build_snapshot(&v020, &collected, patient, at, opts);
            expected.push(Row {
                source_key: format!("{sha}/{patient}/{}", time),
                patient_id: patient.into(),
                ..engine_row(&v020, &snapshot, at)
            });
        }
    }
    expected.sort_by(|a, b| a.source_key.cmp(&b.source_key));
    assert_eq!(got, expected);
    // Written for 0.2.0: borderline at the first gases, eligible after more than 6 h.
    let eligible: Vec<Option<&str>> = got
        .iter()
        .filter(|r| r.patient_id == "rb-eligible")
        .map(|r| r.ecmo_category.as_deref())
        .collect();
    assert_eq!(eligible.last(), Some(&Some("eligible")), "{eligible:?}");
    assert_eq!(summary["categories"]["eligible"], 1, "{summary:#}");
    let parameters: Value =
        sqlx::query_scalar("SELECT parameters FROM replay_run WHERE id = $1::uuid")
            .bind(run)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        parameters,
        json!({"ruleset": "0.2.0", "source": "bundle", "file": std::path::absolute(&path).unwrap(),
               "sha256": sha, "patient": null})
    );

    // One patient of the file.
    let s = replay_json(&[
        "--database-url",
        &db.url,
        "--bundle",
        file,
        "--patient",
        "rb-stable",
    ]);
    assert_eq!(s["inputs"], 1);
    let one = rows(&pool, s["run_id"].as_str().unwrap()).await;
    assert_eq!(
        one[0].source_key,
        format!("{sha}/rb-stable/{}", STABLE[0].0)
    );

    // A MIMIC-IV demo patient: one outcome at each of their arterial PaO2 times.
    let line = std::fs::read_to_string(shared_dir().join(MIMIC))
        .unwrap()
        .lines()
        .find(|l| l.contains(r#""id":"mimic-10037975""#))
        .unwrap()
        .to_string();
    let times = pao2_times(&serde_json::from_str(&line).unwrap());
    assert!(times.len() > 1, "{times:?}");
    let mimic = dir.path().join("mimic-10037975.json");
    std::fs::write(&mimic, &line).unwrap();
    let s = replay_json(&[
        "--database-url",
        &db.url,
        "--bundle",
        mimic.to_str().unwrap(),
        "--patient",
        "mimic-10037975",
    ]);
    let got = rows(&pool, s["run_id"].as_str().unwrap()).await;
    let at: BTreeSet<DateTime<Utc>> = got.iter().map(|r| r.evaluated_at).collect();
    assert_eq!(at, times);
    assert_eq!(got.len(), times.len());
    assert!(got.iter().all(|r| r.patient_id == "mimic-10037975"));
}

async fn migrated(db: &TestDb) -> PgPool {
    let pool = PgPool::connect(&db.url).await.unwrap();
    lrt_server::service::store::MIGRATOR
        .run(&pool)
        .await
        .unwrap();
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_bundle_run_resumes_to_every_outcome_exactly_once() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    let mimic = shared_dir().join(MIMIC);
    let first = replay_json(&[
        "--database-url",
        &db.url,
        "--bundle",
        mimic.to_str().unwrap(),
        "--threads",
        "2",
    ]);
    let run = first["run_id"].as_str().unwrap().to_string();
    // Every arterial blood gas of the demo (README of the data: 706 arterial pO2).
    assert_eq!(
        (&first["inputs"], &first["done"]),
        (&json!(706), &json!(706))
    );
    let complete = rows(&pool, &run).await;
    assert_eq!(complete.len(), 706);

    // Cut short after the first batch and a bit (a killed process leaves the run `running`).
    sqlx::query(
        "DELETE FROM replay_outcome WHERE run_id = $1::uuid AND source_key NOT IN \
           (SELECT source_key FROM replay_outcome WHERE run_id = $1::uuid ORDER BY source_key LIMIT 600)",
    )
    .bind(&run)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE replay_run SET state = 'running', done = 600, finished_at = NULL WHERE id = $1::uuid",
    )
    .bind(&run)
    .execute(&pool)
    .await
    .unwrap();
    let kept: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT source_key, created_at FROM replay_outcome WHERE run_id = $1::uuid ORDER BY 1",
    )
    .bind(&run)
    .fetch_all(&pool)
    .await
    .unwrap();
    let resumed = replay_json(&["--database-url", &db.url, "--resume", &run]);
    assert_eq!(
        (
            &resumed["written"],
            &resumed["skipped_already_done"],
            &resumed["done"],
            &resumed["inputs"]
        ),
        (&json!(106), &json!(600), &json!(706), &json!(706))
    );
    assert_eq!(rows(&pool, &run).await, complete);
    assert_eq!(
        run_state(&pool, &run).await,
        (Some(706), 706, "finished".into())
    );
    // The outcomes held were not rewritten.
    let still: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT source_key, created_at FROM replay_outcome WHERE run_id = $1::uuid \
           AND source_key = ANY($2) ORDER BY 1",
    )
    .bind(&run)
    .bind(kept.iter().map(|k| k.0.clone()).collect::<Vec<_>>())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(still, kept);

    // A finished run is not redone.
    let out = lrt(&[
        "replay",
        "--database-url",
        &db.url,
        "--resume",
        &run,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is finished: nothing redone"),
        "{}",
        stderr(&out)
    );
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&again["written"], &again["done"]),
        (&json!(0), &json!(706))
    );
    assert_eq!(rows(&pool, &run).await.len(), 706);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_with_a_clear_message() {
    let db = TestDb::create().await;
    let _pool = migrated(&db).await;
    let bundle = shared_dir().join(MIMIC);
    let bundle = bundle.to_str().unwrap();
    // Checked before the database is contacted: nothing listens on port 1.
    let nowhere = "postgres://nobody@127.0.0.1:1/none";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--database-url",
                nowhere,
                "--bundle",
                bundle,
                "--ruleset",
                "9.9.9",
            ],
            "rule set \"9.9.9\": no such version or folder",
        ),
        (
            vec!["--database-url", nowhere, "--bundle", "no/such/file.ndjson"],
            "no/such/file.ndjson: cannot read",
        ),
        (
            vec![
                "--database-url",
                nowhere,
                "--bundle",
                bundle,
                "--patient",
                "mimic-0",
            ],
            "no Patient/mimic-0 in it",
        ),
        (
            vec![
                "--database-url",
                nowhere,
                "--from",
                "2026-12-01T00:00:00Z",
                "--to",
                "2026-11-01T00:00:00Z",
            ],
            "is not before --to",
        ),
        (
            vec![
                "--database-url",
                &db.url,
                "--resume",
                "5f0c6f3e-8d3c-4a51-9e3e-1f1f1f1f1f1f",
            ],
            "no replay run 5f0c6f3e-8d3c-4a51-9e3e-1f1f1f1f1f1f in the database",
        ),
        (
            vec!["--database-url", &db.url, "--resume", "run-7"],
            "is not a replay run id",
        ),
        (vec!["--bundle", bundle], "no database"),
    ];
    for (args, message) in cases {
        let mut all = vec!["replay"];
        all.extend(args);
        let out = lrt(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{all:?}: {}", stderr(&out));
    }
    // A database without the replay tables.
    let bare = TestDb::create().await;
    let out = lrt(&["replay", "--database-url", &bare.url, "--bundle", bundle]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run `lrt migrate` first"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_hashes_replay_patients_then_deletes_old_runs() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic_ndjson(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    let mut collected = lrt_fhir::Collected::default();
    for line in text.lines() {
        collected.add(lrt_fhir::parse(line).unwrap());
    }
    let rules = rules("0.2.0");
    let sha = sha256_hex(text.as_bytes());
    let record = BundleRecord::new(&collected, sha.clone(), &["rb-eligible".into()]);
    let replay = Replay {
        pool: &pool,
        rules: &rules,
        threads: 1,
        batch: 2,
        progress: &Silent,
    };
    let parameters = |patient: Option<&str>| RunParameters {
        ruleset: "0.2.0".into(),
        source: SourceParameters::Bundle(BundleFile {
            file: path.display().to_string(),
            sha256: sha.clone(),
            patient: patient.map(str::to_string),
        }),
    };
    // Three runs: 200 days old, 100 days old (its patient data due) and new.
    let mut ids = Vec::new();
    for days in [200, 100, 0] {
        let s = replay
            .start(&parameters(Some("rb-eligible")), Inputs::Bundle(&record))
            .await
            .unwrap();
        assert_eq!((s.inputs, s.done), (3, 3));
        sqlx::query(
            "UPDATE replay_run SET started_at = now() - make_interval(days => $2) WHERE id = $1",
        )
        .bind(s.run_id)
        .bind(days)
        .execute(&pool)
        .await
        .unwrap();
        ids.push(s.run_id);
    }
    let purged = retention::purge(
        &pool,
        &RetentionConfig {
            patient_data_days: 90,
            row_days: 180,
        },
    )
    .await
    .unwrap()
    .expect("no other purge runs");
    // The 200-day run is anonymised (past both horizons), then deleted with its outcomes.
    assert_eq!(purged.replay_outcomes_anonymised, 6, "{purged:?}");
    assert_eq!(purged.rows_deleted, 3 + 1, "{purged:?}");
    let runs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM replay_run ORDER BY started_at")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(runs, vec![ids[1], ids[2]]);
    let hashed = format!("sha256:{}", sha256_hex(b"rb-eligible"));
    let middle = rows(&pool, &ids[1].to_string()).await;
    assert_eq!(middle.len(), 3);
    for r in &middle {
        assert_eq!(r.patient_id, hashed);
        assert!(
            r.source_key.starts_with(&format!("{sha}/{hashed}/")) && !r.source_key.contains("rb-"),
            "{}",
            r.source_key
        );
        assert!(r.ecmo_category.is_some(), "categories are kept");
    }
    let new = rows(&pool, &ids[2].to_string()).await;
    assert!(new.iter().all(|r| r.patient_id == "rb-eligible"));
    let run = replay::store::run(&pool, ids[1]).await.unwrap();
    assert_eq!(run.parameters.0["patient"], json!(hashed));
    assert!(run.parameters.0.get("patient_data_purged_at").is_some());
    // Such a run is not resumed (its keys no longer name the patient).
    sqlx::query("UPDATE replay_run SET state = 'failed' WHERE id = $1")
        .bind(ids[1])
        .execute(&pool)
        .await
        .unwrap();
    let run = replay::store::run(&pool, ids[1]).await.unwrap();
    let refused = replay.resume(&run, Inputs::Bundle(&record)).await;
    assert!(
        refused.as_ref().is_err_and(|e| e
            .to_string()
            .contains("retention has purged its patient data")),
        "{refused:?}"
    );
}
