//! Data retention (issue 11): the purge removes patient data after `patient_data_days` and rows
//! after `row_days`, keeps what the quality dashboard counts, and leaves younger rows alone.
//! Real hook calls through the service (with pages and feedback) on a database of its own; the
//! rows' ages are set by moving their timestamps back.

use std::time::Duration;

use axum::http::StatusCode;
use lrt_e2e::pager::{PagerReceiver, eventually};
use lrt_e2e::service::TestApp;
use lrt_e2e::synthetic::{BORDERLINE, STABLE, patient_view};
use lrt_server::service::retention::{self, RetentionConfig};
use serde_json::{Value, json};

const PV: &str = "/cds-services/lrt-patient-view";

async fn call(app: &TestApp, body: &Value) -> Value {
    let res = app
        .http
        .post(app.url(PV))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn scalar<T>(app: &TestApp, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

/// Moves every timestamp of the rows of `patient` back by `days`.
async fn age(app: &TestApp, patient: &str, days: i32) {
    for sql in [
        "UPDATE evaluation SET created_at = created_at - make_interval(days => $2) WHERE patient_id = $1",
        "UPDATE consult_page SET created_at = created_at - make_interval(days => $2) WHERE patient_id = $1",
        "UPDATE hook_call SET received_at = received_at - make_interval(days => $2) \
           WHERE evaluation_id IN (SELECT id FROM evaluation WHERE patient_id = $1)",
    ] {
        sqlx::query(sql)
            .bind(patient)
            .bind(days)
            .execute(&app.pool)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_removes_patient_data_then_rows_and_keeps_what_the_dashboard_counts() {
    let pager = PagerReceiver::start("test-only-webhook-secret").await;
    let (app, _dir) = TestApp::spawn_paging_to(&pager, |c| c.insecure_no_auth = true).await;

    // Three patients: "old" (200 days: past both horizons), "middle" (100 days: patient data
    // due, row kept) and "new" (today). "old" and "middle" page; "middle" has feedback.
    let old = call(&app, &patient_view("ret-old", BORDERLINE)).await;
    let middle = call(&app, &patient_view("ret-middle", BORDERLINE)).await;
    call(&app, &patient_view("ret-new", STABLE)).await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            pager.received().iter().filter(|r| r.signature_ok).count() == 2
        })
        .await,
        "both pages delivered"
    );
    let card = middle["cards"][0]["uuid"].as_str().unwrap().to_string();
    let feedback = app
        .http
        .post(app.url(&format!("{PV}/feedback")))
        .header("content-type", "application/json")
        .body(
            json!({"feedback": [{"card": card, "outcome": "overridden",
                                  "outcomeTimestamp": "2026-11-30T12:00:00Z"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(feedback.status(), StatusCode::OK);
    assert!(old["cards"].as_array().is_some_and(|c| !c.is_empty()));
    age(&app, "ret-old", 200).await;
    age(&app, "ret-middle", 100).await;

    let categories = "SELECT string_agg(role || ':' || coalesce(ecmo_category, '-') || ':' || \
        coalesce(assessment->>'ecmo_category', '-'), ',' ORDER BY role, ecmo_category) \
        FROM evaluation WHERE patient_id NOT LIKE 'ret-new'";
    let before: String = scalar(&app, categories).await;
    let evaluations_before: i64 = scalar(&app, "SELECT count(*) FROM evaluation").await;
    // Active and shadow per call.
    assert_eq!(evaluations_before, 6);

    let config = RetentionConfig {
        patient_data_days: 90,
        row_days: 180,
    };
    let purged = retention::purge(&app.pool, &config)
        .await
        .unwrap()
        .expect("no other purge runs");
    // "old": 2 evaluations, 1 page with its delivery and attempt, 1 hook call.
    assert_eq!(purged.rows_deleted, 2 + 1 + 1 + 1 + 1, "{purged:?}");
    // "old" is anonymised first (it is past both), then deleted; "middle" is anonymised.
    assert_eq!(purged.evaluations_anonymised, 4, "{purged:?}");
    assert_eq!(purged.pages_anonymised, 2, "{purged:?}");

    // Nothing of "old" is left.
    let hashed_old = "sha256:".to_string() + &sha256_hex("ret-old");
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM evaluation WHERE patient_id = $1 OR patient_id = 'ret-old'",
    )
    .bind(&hashed_old)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        scalar::<i64>(&app, "SELECT count(*) FROM consult_page").await,
        1
    );

    // "middle": no patient data, the patient id hashed, the classifications kept.
    let hashed = "sha256:".to_string() + &sha256_hex("ret-middle");
    let row: (Value, Value, Value, String) = sqlx::query_as(
        "SELECT snapshot, response, assessment, patient_id FROM evaluation \
         WHERE role = 'active' AND patient_id = $1",
    )
    .bind(&hashed)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(row.0, json!({}));
    // The cards' uuids and indicators only (the quality aggregates count them).
    let cards = row.1["cards"].as_array().expect("cards kept");
    let kept_card = cards.iter().find(|c| c["uuid"] == card.as_str());
    assert!(kept_card.is_some(), "{}", row.1);
    for c in cards {
        let mut keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["indicator", "uuid"], "{c}");
    }
    assert_eq!(row.2["ecmo_category"], "borderline", "{}", row.2);
    assert!(row.2["recommendations"].is_array());
    assert!(
        row.2.get("pao2_mmhg").is_none(),
        "values are gone: {}",
        row.2
    );
    assert!(row.2.get("explanations").is_none());
    let text = row.2.to_string();
    assert!(!text.contains("ret-middle"), "{text}");
    let payload: Value = sqlx::query_scalar("SELECT payload FROM consult_page")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(payload, json!({}));
    // Its feedback is kept (the acceptance rate still counts it).
    assert_eq!(
        scalar::<i64>(&app, "SELECT count(*) FROM card_feedback").await,
        1
    );
    let after: String = scalar(
        &app,
        "SELECT string_agg(role || ':' || coalesce(ecmo_category, '-') || ':' || \
         coalesce(assessment->>'ecmo_category', '-'), ',' ORDER BY role, ecmo_category) \
         FROM evaluation WHERE patient_id = 'sha256:' || encode(sha256(convert_to('ret-middle', 'UTF8')), 'hex')",
    )
    .await;
    assert!(before.contains(&after), "{before} / {after}");

    // "new" is untouched.
    let snapshot: Value = sqlx::query_scalar(
        "SELECT snapshot FROM evaluation WHERE role = 'active' AND patient_id = 'ret-new'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_ne!(snapshot, json!({}));

    // A second purge finds nothing to do.
    let again = retention::purge(&app.pool, &config).await.unwrap().unwrap();
    assert_eq!(again, retention::Purged::default());
    app.stop().await;
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
