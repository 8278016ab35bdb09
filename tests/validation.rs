//! Silent-mode validation (issue 10, item 3) end to end: the adjudication file
//! `tests/fixtures/validation/adjudications.csv` (12 rows) against evaluations seeded in a real
//! PostgreSQL database, through the API (`POST /api/v1/quality/validation`, CSV and JSON bodies,
//! two tenancies), through the `lrt validate` binary, and against a seeded replay run
//! (`--run`). Every figure is worked out by hand below.
//!
//! The seeded active evaluations (tenant A = issuer `ehr-a`, tenant `hospital-a`, unless said;
//! times on 2026-11-02 unless said; `C` = the consult trigger `ECMO_CENTER_CONSULT`), with each
//! adjudication (look-back 24 h) and its cells (screen, consult) and lead times:
//!
//! | row  | adjudicated at, category, consult | calls (time category triggers) | screen | consult |
//! |------|-----------------------------------|--------------------------------|--------|---------|
//! | v-01 | 12:00 eligible, yes   | 04:00 borderline C; 09:00 eligible C            | TP 8 h   | TP 8 h  |
//! | v-02 | 18:00 borderline, yes | 16:00 borderline C                              | TP 2 h   | TP 2 h  |
//! | v-03 | 11-03 08:00 eligible, yes | 10:00 not_indicated; 20:00 eligible C       | TP 12 h  | TP 12 h |
//! | v-04 | 11-03 12:00 borderline, yes | 11-03 06:00 borderline C; 11-03 11:30 not_indicated | FN | FN |
//! | v-05 | 11-03 12:00 eligible, yes | 11-03 10:00 insufficient_data               | FN (listed) | FN |
//! | v-06 | 12:00 not_indicated, no | 11:00 borderline C                            | FP       | FP      |
//! | v-07 | 12:00 not_indicated, no | 07:00 not_indicated (+ a shadow eligible C at 11:30, ignored) | TN | TN |
//! | v-08 | 12:00 ineligible, no  | 08:00 ineligible                                | TN       | TN      |
//! | v-09 | 12:00 not_indicated, no | 09:00 insufficient_data                       | TN (listed) | TN   |
//! | v-10 | 12:00 eligible, yes   | 11-01 06:00 eligible C (30 h before); 13:00 eligible C (after) | not evaluated | |
//! | v-11 | 12:00 borderline, no  | 09:30 borderline                                | TP 2.5 h | TN      |
//! | v-12 | 12:00 eligible, yes   | tenant B: 06:00 eligible C                      | TP 6 h   | TP 6 h  |
//!
//! Lead time = adjudicated time − the first positive call in the window (v-01: 12:00 − 04:00).

use std::process::{Command, Output};

use lrt_auth::AuthConfig;
use lrt_e2e::cds_client::TenantCaller;
use lrt_e2e::service::{TestApp, lrt_binary, repo_file};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const PATH: &str = "/api/v1/quality/validation";
const FIXTURE: &str = "tests/fixtures/validation/adjudications.csv";
const A_ISS: &str = "https://ehr-a.test.example";
const B_ISS: &str = "https://ehr-b.test.example";
const C: &[&str] = &["ECMO_CENTER_CONSULT"];

struct Setup {
    app: TestApp,
    a: TenantCaller,
    quality: TenantCaller,
}

async fn setup() -> Setup {
    lrt_fhir::client::install_crypto_provider();
    let a = TenantCaller::new(A_ISS, Some("hospital-a")).await;
    let quality = TenantCaller::new("https://quality.test.example", None).await;
    let mut auth = AuthConfig::new(vec![a.issuer(), quality.issuer()]);
    auth.allow_insecure_loopback_http = true;
    let quality_iss = quality.client.iss.clone();
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.quality_issuers = vec![quality_iss];
    })
    .await;
    Setup { app, a, quality }
}

impl Setup {
    /// POSTs `body` as `content_type` to the validation with `query`, as `who`.
    async fn post(
        &self,
        who: &TenantCaller,
        query: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let res = self
            .app
            .http
            .post(self.app.url(&format!("{PATH}{query}")))
            .bearer_auth(who.token(&self.app.url("/api/v1")))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the service answers");
        let status = res.status();
        let text = res.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post_csv(&self, who: &TenantCaller, query: &str) -> (StatusCode, Value) {
        let csv = std::fs::read(repo_file(FIXTURE)).expect("the fixture");
        self.post(who, query, "text/csv; charset=utf-8", csv).await
    }
}

/// Inserts an evaluation; returns its id.
#[allow(clippy::too_many_arguments)]
async fn evaluation(
    pool: &sqlx::PgPool,
    patient: &str,
    created_at: &str,
    category: &str,
    triggers: &[&str],
    iss: &str,
    tenant: &str,
    role: &str,
) -> Uuid {
    let id = Uuid::new_v4();
    let triggers: Vec<Value> = triggers
        .iter()
        .map(|code| json!({"code": code, "display": code, "urgency": "emergent", "rules": []}))
        .collect();
    sqlx::query(
        "INSERT INTO evaluation (id, hook_instance, role, service_id, hook, patient_id, client_iss, \
           tenant, ruleset_id, ruleset_version, ruleset_sha256, evaluated_at, created_at, snapshot, \
           assessment, prefetch_sources, response, status, latency_ms, ecmo_category) \
         VALUES ($1, $2, $3, 'lrt-patient-view', 'patient-view', $4, $5, $6, 'lrt-ruleset', '0.2.0', \
           'test', $7::timestamptz - interval '20 minutes', $7::timestamptz, '{}', $8, '{}', '{}', \
           200, 5, $9)",
    )
    .bind(id)
    .bind(Uuid::new_v4().to_string())
    .bind(role)
    .bind(patient)
    .bind(iss)
    .bind(tenant)
    .bind(created_at)
    .bind(json!({"ecmo": {"category": category}, "consult_triggers": triggers}))
    .bind(category)
    .execute(pool)
    .await
    .expect("an evaluation");
    id
}

/// The active evaluations of the table above: (patient, created_at, category, triggers, tenant B).
const ACTIVE: &[(&str, &str, &str, &[&str], bool)] = &[
    ("v-01", "2026-11-02T04:00:00Z", "borderline", C, false),
    ("v-01", "2026-11-02T09:00:00Z", "eligible", C, false),
    ("v-02", "2026-11-02T16:00:00Z", "borderline", C, false),
    ("v-03", "2026-11-02T10:00:00Z", "not_indicated", &[], false),
    ("v-03", "2026-11-02T20:00:00Z", "eligible", C, false),
    ("v-04", "2026-11-03T06:00:00Z", "borderline", C, false),
    ("v-04", "2026-11-03T11:30:00Z", "not_indicated", &[], false),
    (
        "v-05",
        "2026-11-03T10:00:00Z",
        "insufficient_data",
        &[],
        false,
    ),
    ("v-06", "2026-11-02T11:00:00Z", "borderline", C, false),
    ("v-07", "2026-11-02T07:00:00Z", "not_indicated", &[], false),
    ("v-08", "2026-11-02T08:00:00Z", "ineligible", &[], false),
    (
        "v-09",
        "2026-11-02T09:00:00Z",
        "insufficient_data",
        &[],
        false,
    ),
    ("v-10", "2026-11-01T06:00:00Z", "eligible", C, false),
    ("v-10", "2026-11-02T13:00:00Z", "eligible", C, false),
    ("v-11", "2026-11-02T09:30:00Z", "borderline", &[], false),
    ("v-12", "2026-11-02T06:00:00Z", "eligible", C, true),
];

/// Seeds the evaluations; returns the active ones' ids in `ACTIVE` order.
async fn seed(pool: &sqlx::PgPool) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for (patient, at, category, triggers, tenant_b) in ACTIVE {
        let (iss, tenant) = if *tenant_b {
            (B_ISS, "hospital-b")
        } else {
            (A_ISS, "hospital-a")
        };
        ids.push(evaluation(pool, patient, at, category, triggers, iss, tenant, "active").await);
    }
    // A shadow evaluation: never compared.
    evaluation(
        pool,
        "v-07",
        "2026-11-02T11:30:00Z",
        "eligible",
        C,
        A_ISS,
        "hospital-a",
        "shadow",
    )
    .await;
    ids
}

/// Seeds a finished replay run (rule set 0.3.0) of the stored evaluations, whose outcomes are
/// the stored ones except: v-04's 11:30 call becomes borderline with C, v-06's 11:00 call
/// not_indicated without a trigger; plus the outcome of a v-10 evaluation since purged (no
/// stored row) at 2026-11-02T09:00, eligible with C. Each stored outcome's `evaluated_at` is
/// 3 h before its evaluation's `created_at`: the comparison must use `created_at`. Another
/// run's outcome (v-05 eligible) must not count. Returns the run's id.
async fn seed_replay(pool: &sqlx::PgPool, ids: &[Uuid]) -> Uuid {
    let run = Uuid::new_v4();
    let other = Uuid::new_v4();
    for (id, version, state) in [(run, "0.3.0", "finished"), (other, "0.4.0", "running")] {
        sqlx::query(
            "INSERT INTO replay_run (id, source, parameters, ruleset_id, ruleset_version, \
               ruleset_sha256, state, planned, done, finished_at) \
             VALUES ($1, 'stored', '{}', 'lrt-ruleset', $2, 'test', $3, 17, 17, now())",
        )
        .bind(id)
        .bind(version)
        .bind(state)
        .execute(pool)
        .await
        .expect("a replay run");
    }
    let outcome = async |run: Uuid,
                         key: String,
                         source: Option<Uuid>,
                         patient: &str,
                         evaluated_at: &str,
                         category: &str,
                         triggers: &[&str]| {
        sqlx::query(
            "INSERT INTO replay_outcome (run_id, source_key, source_evaluation_id, patient_id, \
               evaluated_at, ecmo_category, consult_triggers) \
             VALUES ($1, $2, $3, $4, $5::timestamptz, $6, $7)",
        )
        .bind(run)
        .bind(key)
        .bind(source)
        .bind(patient)
        .bind(evaluated_at)
        .bind(category)
        .bind(triggers.iter().map(|t| t.to_string()).collect::<Vec<_>>())
        .execute(pool)
        .await
        .expect("a replay outcome");
    };
    for ((patient, at, category, triggers, _), id) in ACTIVE.iter().zip(ids) {
        let (category, triggers): (&str, &[&str]) = match (*patient, *at) {
            ("v-04", "2026-11-03T11:30:00Z") => ("borderline", C),
            ("v-06", _) => ("not_indicated", &[]),
            _ => (category, triggers),
        };
        let created: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
        let evaluated_at = (created - chrono::Duration::hours(3)).to_rfc3339();
        outcome(
            run,
            id.to_string(),
            Some(*id),
            patient,
            &evaluated_at,
            category,
            triggers,
        )
        .await;
    }
    let purged = Uuid::new_v4();
    outcome(
        run,
        purged.to_string(),
        Some(purged),
        "v-10",
        "2026-11-02T09:00:00Z",
        "eligible",
        C,
    )
    .await;
    outcome(
        other,
        "bundle/v-05".into(),
        None,
        "v-05",
        "2026-11-03T11:00:00Z",
        "eligible",
        C,
    )
    .await;
    run
}

fn close(actual: &Value, expected: f64) -> bool {
    actual.as_f64().is_some_and(|a| (a - expected).abs() < 5e-4)
}

/// A proportion: numerator, denominator, and value and Wilson bounds to 3 decimals.
fn assert_proportion(p: &Value, num: u64, den: u64, ci: (f64, f64), what: &str) {
    assert_eq!(
        (p["numerator"].as_u64(), p["denominator"].as_u64()),
        (Some(num), Some(den)),
        "{what}: {p}"
    );
    assert!(close(&p["value"], num as f64 / den as f64), "{what}: {p}");
    assert!(
        close(&p["ci95"]["low"], ci.0) && close(&p["ci95"]["high"], ci.1),
        "{what}: {p}, expected {ci:?}"
    );
}

fn assert_table(m: &Value, tp: u64, fp: u64, fn_: u64, tn: u64, what: &str) {
    assert_eq!(
        [&m["tp"], &m["fp"], &m["fn"], &m["tn"]].map(|v| v.as_u64()),
        [Some(tp), Some(fp), Some(fn_), Some(tn)],
        "{what}: {m}"
    );
}

fn assert_lead(
    l: &Value,
    n: u64,
    median: f64,
    q: Option<(f64, f64)>,
    range: (f64, f64),
    what: &str,
) {
    assert_eq!(l["n"].as_u64(), Some(n), "{what}: {l}");
    assert!(close(&l["median"], median), "{what}: {l}");
    match q {
        Some((q1, q3)) => assert!(close(&l["q1"], q1) && close(&l["q3"], q3), "{what}: {l}"),
        None => assert!(l["q1"].is_null() && l["q3"].is_null(), "{what}: {l}"),
    }
    assert!(
        close(&l["min"], range.0) && close(&l["max"], range.1),
        "{what}: {l}"
    );
}

fn listed(set: &Value) -> Vec<&str> {
    set["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["patient"].as_str().expect("a patient"))
        .collect()
}

/// The figures over every tenant's stored evaluations (the quality issuer, and the CLI).
///
/// ECMO screen: TP v-01, v-02, v-03, v-11, v-12 = 5; FP v-06 = 1; FN v-04, v-05 = 2;
/// TN v-07, v-08, v-09 = 3 (11 evaluated; v-10 not evaluated).
/// * sensitivity 5/(5+2) = 0.714, Wilson 0.359–0.918; specificity 3/(3+1) = 0.75, 0.301–0.954;
/// * PPV 5/(5+1) = 0.833, 0.436–0.970; NPV 3/(3+2) = 0.600, 0.231–0.882;
/// * lead times 8, 2, 12, 2.5, 6 h → sorted 2, 2.5, 6, 8, 12: median 6; type-7 Q1 (h = 1) 2.5,
///   Q3 (h = 3) 8; range 2–12.
///
/// Consult trigger: TP v-01, v-02, v-03, v-12 = 4; FP v-06 = 1; FN v-04, v-05 = 2;
/// TN v-07, v-08, v-09, v-11 = 4.
/// * sensitivity 4/6 = 0.667, 0.300–0.903; specificity 4/5 = 0.800, 0.376–0.964;
/// * PPV 4/5 = 0.800, 0.376–0.964; NPV 4/6 = 0.667, 0.300–0.903;
/// * lead times 8, 2, 12, 6 → sorted 2, 6, 8, 12: median 7; Q1 (h = 0.75) 2 + 0.75·4 = 5;
///   Q3 (h = 2.25) 8 + 0.25·4 = 9; range 2–12.
///
/// Exact category: v-01, v-02, v-03, v-07, v-08, v-11, v-12 agree: 7/11 = 0.636, 0.354–0.848.
fn assert_every_tenant_stored(v: &Value) {
    assert_eq!(v["source"], json!({"kind": "stored"}));
    assert_eq!(
        (v["adjudications"].as_u64(), v["evaluated"].as_u64()),
        (Some(12), Some(11))
    );
    assert_eq!(v["window"], "24h");
    assert_eq!(v["ruleset_versions"], json!(["0.2.0"]));
    let s = &v["screen"];
    assert_table(s, 5, 1, 2, 3, "screen");
    assert_proportion(
        &s["sensitivity"],
        5,
        7,
        (0.359, 0.918),
        "screen sensitivity",
    );
    assert_proportion(
        &s["specificity"],
        3,
        4,
        (0.301, 0.954),
        "screen specificity",
    );
    assert_proportion(&s["ppv"], 5, 6, (0.436, 0.970), "screen PPV");
    assert_proportion(&s["npv"], 3, 5, (0.231, 0.882), "screen NPV");
    assert_lead(
        &s["lead_time_hours"],
        5,
        6.0,
        Some((2.5, 8.0)),
        (2.0, 12.0),
        "screen lead",
    );
    let c = &v["consult"];
    assert_table(c, 4, 1, 2, 4, "consult");
    assert_proportion(
        &c["sensitivity"],
        4,
        6,
        (0.300, 0.903),
        "consult sensitivity",
    );
    assert_proportion(
        &c["specificity"],
        4,
        5,
        (0.376, 0.964),
        "consult specificity",
    );
    assert_proportion(&c["ppv"], 4, 5, (0.376, 0.964), "consult PPV");
    assert_proportion(&c["npv"], 4, 6, (0.300, 0.903), "consult NPV");
    assert_lead(
        &c["lead_time_hours"],
        4,
        7.0,
        Some((5.0, 9.0)),
        (2.0, 12.0),
        "consult lead",
    );
    assert_proportion(&v["agreement"]["exact"], 7, 11, (0.354, 0.848), "agreement");
    assert_eq!(listed(&v["not_evaluated"]), ["v-10"]);
    assert_eq!(v["not_evaluated"]["adjudicated_screen_positive"], 1);
    assert_eq!(listed(&v["insufficient_data"]), ["v-05", "v-09"]);
    assert_eq!(v["insufficient_data"]["adjudicated_screen_positive"], 1);
    // The rows in file order, each with its call and cells.
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0]["calls_in_window"], 2);
    assert_eq!(rows[0]["system"]["category"], "eligible");
    assert_eq!(rows[0]["system"]["at"], "2026-11-02T09:00:00Z");
    assert_eq!(rows[3]["screen"], "fn");
    assert_eq!(
        rows[6]["screen"], "tn",
        "v-07: the shadow evaluation is not compared"
    );
    assert_eq!(rows[7]["time"], "2026-11-02T12:00:00Z", "v-08: 13:00+01:00");
    assert!(
        rows[9]["system"].is_null() && rows[9]["screen"].is_null(),
        "v-10"
    );
    assert_eq!(rows[10]["patient"], "v-11", "Patient/v-11 is the id v-11");
    assert!(close(&rows[10]["screen_lead_time_hours"], 2.5));
}

/// The replay run's figures (every tenant).
///
/// ECMO screen: v-04's latest call is now borderline → TP, lead from its first positive call in
/// the window (11-03 06:00) = 6 h; v-06 → TN; v-10 is evaluated by the purged evaluation's
/// outcome at 09:00 (its `evaluated_at`) → TP, lead 3 h. TP v-01, v-02, v-03, v-04, v-10,
/// v-11, v-12 = 7; FP 0; FN v-05 = 1; TN v-06, v-07, v-08, v-09 = 4 (12 evaluated).
/// * sensitivity 7/8 = 0.875, 0.529–0.978; specificity 4/4 = 1, 0.510–1;
/// * PPV 7/7 = 1, 0.646–1; NPV 4/5 = 0.800, 0.376–0.964;
/// * lead times 8, 2, 12, 6, 3, 2.5, 6 → sorted 2, 2.5, 3, 6, 6, 8, 12: median 6;
///   Q1 (h = 1.5) 2.5 + 0.5·0.5 = 2.75; Q3 (h = 4.5) 6 + 0.5·2 = 7; range 2–12.
///
/// Consult: TP v-01, v-02, v-03, v-04, v-10, v-12 = 6; FP 0; FN v-05 = 1; TN v-06, v-07, v-08,
/// v-09, v-11 = 5. Sensitivity 6/7 = 0.857, 0.487–0.974; PPV 6/6 = 1; NPV 5/6 = 0.833,
/// 0.436–0.970; lead times 8, 2, 12, 6, 3, 6 → sorted 2, 3, 6, 6, 8, 12: median 6;
/// Q1 (h = 1.25) 3 + 0.25·3 = 3.75; Q3 (h = 3.75) 6 + 0.75·2 = 7.5.
fn assert_every_tenant_replay(v: &Value, run: Uuid) {
    assert_eq!(v["source"]["kind"], "replay");
    assert_eq!(v["source"]["run"], run.to_string());
    assert_eq!(v["source"]["state"], "finished");
    assert_eq!(v["ruleset_versions"], json!(["0.3.0"]));
    assert_eq!(
        (v["adjudications"].as_u64(), v["evaluated"].as_u64()),
        (Some(12), Some(12))
    );
    let s = &v["screen"];
    assert_table(s, 7, 0, 1, 4, "replay screen");
    assert_proportion(
        &s["sensitivity"],
        7,
        8,
        (0.529, 0.978),
        "replay sensitivity",
    );
    assert_proportion(&s["specificity"], 4, 4, (0.510, 1.0), "replay specificity");
    assert_proportion(&s["ppv"], 7, 7, (0.646, 1.0), "replay PPV");
    assert_proportion(&s["npv"], 4, 5, (0.376, 0.964), "replay NPV");
    assert_lead(
        &s["lead_time_hours"],
        7,
        6.0,
        Some((2.75, 7.0)),
        (2.0, 12.0),
        "replay lead",
    );
    let c = &v["consult"];
    assert_table(c, 6, 0, 1, 5, "replay consult");
    assert_proportion(
        &c["sensitivity"],
        6,
        7,
        (0.487, 0.974),
        "replay consult sensitivity",
    );
    assert_proportion(&c["npv"], 5, 6, (0.436, 0.970), "replay consult NPV");
    assert_lead(
        &c["lead_time_hours"],
        6,
        6.0,
        Some((3.75, 7.5)),
        (2.0, 12.0),
        "replay consult lead",
    );
    assert_eq!(v["not_evaluated"]["count"], 0);
    assert_eq!(listed(&v["insufficient_data"]), ["v-05", "v-09"]);
}

/// The answer conforms to the document's schema of the operation.
fn assert_documented(v: &Value) {
    let doc: Value = serde_saphyr::from_str(lrt_server::service::routes::health::OPENAPI)
        .expect("the OpenAPI document reads");
    let mut schema = doc["paths"][PATH]["post"]["responses"]["200"]["content"]["application/json"]
        ["schema"]
        .clone();
    schema["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
    assert!(
        !validator.is_valid(&json!({"screen": {}})),
        "the schema checks"
    );
    let errors: Vec<String> = validator.iter_errors(v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_gives_the_hand_computed_figures() {
    let s = setup().await;
    let ids = seed(&s.app.pool).await;
    let run = seed_replay(&s.app.pool, &ids).await;

    // The quality issuer reads every tenant's evaluations.
    let (status, v) = s.post_csv(&s.quality, "").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_every_tenant_stored(&v);
    assert_documented(&v);
    // The call carries its stored evaluation (the dashboard links it): v-01's 09:00 one.
    assert_eq!(v["rows"][0]["system"]["evaluation_id"], ids[1].to_string());
    assert_eq!(
        lrt_server::service::routes::route_label(PATH),
        "/api/v1/quality/validation"
    );

    // The same rows as JSON give the same answer.
    let text = std::fs::read_to_string(repo_file(FIXTURE)).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.splitn(5, ',').collect();
            json!({"patient": cells[0], "time": cells[1], "category": cells[2],
                   "consult_warranted": cells[3].eq_ignore_ascii_case("true")})
        })
        .collect();
    let body = json!({ "adjudications": rows }).to_string().into_bytes();
    let (status, from_json) = s
        .post(&s.quality, "?window=24h", "application/json", body)
        .await;
    assert_eq!(status, StatusCode::OK, "{from_json}");
    assert_eq!(from_json, v);

    // Tenant A's caller matches its own evaluations only: v-12 (tenant B) is not evaluated.
    // Screen TP v-01, v-02, v-03, v-11 = 4, FP 1, FN 2, TN 3: sensitivity 4/6; lead times
    // 8, 2, 12, 2.5 → median (2.5 + 8)/2 = 5.25, quartiles (h = 0.75, 2.25) 2.375 and 9.
    let (status, a) = s.post_csv(&s.a, "").await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_table(&a["screen"], 4, 1, 2, 3, "tenant A screen");
    assert_proportion(
        &a["screen"]["sensitivity"],
        4,
        6,
        (0.300, 0.903),
        "tenant A sensitivity",
    );
    assert_lead(
        &a["screen"]["lead_time_hours"],
        4,
        5.25,
        Some((2.375, 9.0)),
        (2.0, 12.0),
        "tenant A lead",
    );
    assert_eq!(listed(&a["not_evaluated"]), ["v-10", "v-12"]);

    // The replay run's outcomes.
    let (status, r) = s.post_csv(&s.quality, &format!("?run={run}")).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_every_tenant_replay(&r, run);
    assert_documented(&r);
    // A replay outcome carries the stored evaluation it replayed.
    assert_eq!(r["rows"][0]["system"]["evaluation_id"], ids[1].to_string());
    // Tenant A's caller: the purged evaluation's outcome (v-10) and tenant B's (v-12) are not
    // its own.
    let (_, ra) = s.post_csv(&s.a, &format!("?run={run}")).await;
    assert_eq!(listed(&ra["not_evaluated"]), ["v-10", "v-12"]);
    assert_table(&ra["screen"], 5, 0, 1, 4, "tenant A replay screen");

    // A shorter window: v-01's first positive call (04:00) falls outside 6 h, its 09:00 one
    // counts (lead 3 h); v-03's 20:00 call is 12 h before: not evaluated.
    let (_, short) = s.post_csv(&s.quality, "?window=6h").await;
    assert!(
        close(&short["rows"][0]["screen_lead_time_hours"], 3.0),
        "{short:#}"
    );
    assert!(short["rows"][2]["system"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_a_bad_request_clearly() {
    let s = setup().await;
    let bad = "patient,time,category,consult_warranted\nv-01,2026-11-02T12:00:00Z,eligible,true\nv-02,2026-11-02T12:00:00Z,eligble,true\n";
    let (status, body) = s.post(&s.quality, "", "text/csv", bad.into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome");
    let said = body["issue"][0]["diagnostics"].as_str().unwrap_or_default();
    assert!(said.contains("line 3, column 3 (`category`)"), "{said}");
    assert!(
        said.contains("not_indicated"),
        "the valid codes are listed: {said}"
    );

    let (status, body) = s
        .post(
            &s.quality,
            "",
            "application/json",
            br#"{"adjudications": [{"patient": "v-01", "time": "noon", "category": "eligible", "consult_warranted": true}]}"#.to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let said = body["issue"][0]["diagnostics"].as_str().unwrap_or_default();
    assert!(said.contains("adjudications[0].time"), "{said}");

    let csv = std::fs::read(repo_file(FIXTURE)).unwrap();
    let (status, _) = s.post(&s.quality, "", "text/plain", csv.clone()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for query in [
        "?window=0h",
        "?window=31d",
        "?window=1.5h",
        "?window=%C3%A9",
        "?window=1%C3%A9",
        "?run=nope",
        "?days=3",
    ] {
        let (status, body) = s.post(&s.quality, query, "text/csv", csv.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    let (status, body) = s
        .post(
            &s.quality,
            &format!("?run={}", Uuid::new_v4()),
            "text/csv",
            csv,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for body in [&b""[..], b"\xff\xfe", b"patient\n", b"{}"] {
        let (status, answer) = s.post(&s.quality, "", "text/csv", body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {answer}");
    }
}

fn validate(args: &[&str]) -> Output {
    Command::new(lrt_binary())
        .arg("validate")
        .args(args)
        .current_dir(repo_file(""))
        .env_remove("LRT_CONFIG")
        .env_remove("DATABASE_URL")
        .output()
        .expect("lrt runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_gives_the_same_figures_and_exits_2_on_a_bad_file() {
    let s = setup().await;
    let ids = seed(&s.app.pool).await;
    let run = seed_replay(&s.app.pool, &ids).await;
    let url = s.app.db.url.clone();

    let out = validate(&["--adjudications", FIXTURE, "--database-url", &url, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_every_tenant_stored(&v);

    let run_id = run.to_string();
    let out = validate(&[
        "--adjudications",
        FIXTURE,
        "--database-url",
        &url,
        "--run",
        &run_id,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_every_tenant_replay(&serde_json::from_slice(&out.stdout).expect("JSON"), run);

    // The text report, with the database from a configuration file.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lrt.toml");
    std::fs::write(&config, format!("database_url = {url:?}\n")).unwrap();
    let out = validate(&[
        "--adjudications",
        FIXTURE,
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "adjudications:   12 (11 evaluated, 1 not evaluated)",
        "  system +       TP          5  FP          1",
        "  system -       FN          2  TN          3",
        "  sensitivity  5/7  0.714  (95% CI 0.359–0.918)",
        "  PPV          5/6  0.833  (95% CI 0.436–0.970)",
        "  NPV          3/5  0.600  (95% CI 0.231–0.882)",
        "  lead time of the TPs: n 5, median 6.0 h, IQR 2.5–8.0 h, range 2.0–12.0 h",
        "  v-10  2026-11-02T12:00:00+00:00  adjudicated eligible, consult warranted",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }

    // A bad file: exit 2, naming the file, the line and the column.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "patient,time,category,consult_warranted\nv-01,2026-11-02T12:00:00Z,eligible,true\nv-02,2026-11-02T12:00:00Z,eligible,maybe\n",
    )
    .unwrap();
    let out = validate(&[
        "--adjudications",
        bad.to_str().unwrap(),
        "--database-url",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.csv: line 3, column 4 (`consult_warranted`)"),
        "{err}"
    );
    let out = validate(&["--adjudications", "no/such.csv", "--database-url", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such.csv"));
    let missing = Uuid::new_v4().to_string();
    let out = validate(&[
        "--adjudications",
        FIXTURE,
        "--database-url",
        &url,
        "--run",
        &missing,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no replay run"));
    let out = validate(&[
        "--adjudications",
        FIXTURE,
        "--database-url",
        &url,
        "--window",
        "24",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--window"));
}
