//! Issue 8: PostgreSQL stopped under load. The service runs on a throw-away PostgreSQL cluster
//! (the system's binaries, `lrt_server::dev::postgres`); concurrent CDS Hooks calls with valid
//! ES384 JWTs keep coming while the cluster is stopped at once (`pg_ctl stop -m immediate`) and
//! started again. Every answer is a 200 with cards, or a 503 OperationOutcome with
//! `Retry-After`: never a 401 (the client's credentials are fine), never a 500, never a
//! dropped connection; and the service answers 200 again once the database is back.
//!
//! A failover of the high-availability cluster (CloudNativePG, `deploy/kubernetes/`) can also
//! leave a connection on a demoted primary, which refuses writes as read-only (`25006`): the
//! second test makes the database read-only under the service's feet and checks the same.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lrt_auth::{AuthConfig, TrustedIssuer};
use lrt_e2e::cds_client::{CdsClient, JwksServer};
use lrt_e2e::service::TestApp;
use lrt_e2e::synthetic::{self, BORDERLINE};
use lrt_server::dev::postgres::TempCluster;
use lrt_server::service::config::EvaluationTime;
use reqwest::StatusCode;
use serde_json::Value;

const PV: &str = "/cds-services/lrt-patient-view";

/// One answer as the client saw it.
#[derive(Debug)]
enum Answer {
    /// Cards, for this patient: its evaluation was committed before the answer.
    Ok(String),
    Unavailable,
    Other(String),
}

async fn call(app_http: &reqwest::Client, url: &str, token: String, n: usize) -> Answer {
    let patient = format!("down-{n}");
    let body = synthetic::patient_view(&patient, BORDERLINE);
    let res = match app_http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Answer::Other(format!("no answer: {e}")),
    };
    let status = res.status();
    let retry_after = res.headers().contains_key("retry-after");
    let text = res.text().await.unwrap_or_default();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match status {
        StatusCode::OK if json["cards"].is_array() => Answer::Ok(patient),
        StatusCode::SERVICE_UNAVAILABLE
            if retry_after && json["resourceType"] == "OperationOutcome" =>
        {
            Answer::Unavailable
        }
        other => Answer::Other(format!("{other}: {text}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_stopped_under_load_gives_503_never_401_or_500() {
    lrt_fhir::client::install_crypto_provider();
    let cluster = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .unwrap()
        .expect("a throw-away PostgreSQL cluster (Debian's postgresql package)");
    let client = Arc::new(CdsClient::new("https://ehr.down.example"));
    let jwks = JwksServer::start(client.jwks()).await;
    let mut issuer = TrustedIssuer::new(client.iss.clone());
    issuer.jwks_url = Some(jwks.url.parse().unwrap());
    let mut auth = AuthConfig::new(vec![issuer]);
    auth.allow_insecure_loopback_http = true;
    let url = cluster.url.clone();
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.database_url = Some(url);
        c.evaluation_time = EvaluationTime::NewestBloodGas;
        // Fail fast while the database is gone (the default waits longer for a connection).
        c.limits.request_timeout_ms = 5_000;
    })
    .await;
    let endpoint = app.url(PV);

    // Four clients call without pause; the database is stopped after 1 s, started after 3 s.
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (http, endpoint, client, stop, refused) = (
            app.http.clone(),
            endpoint.clone(),
            client.clone(),
            stop.clone(),
            refused.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = w * 100_000;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let token = client.token(&endpoint);
                let answer = call(&http, &endpoint, token, n).await;
                if matches!(answer, Answer::Unavailable) {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
                answers.push((Instant::now(), answer));
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped_at = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop().expect("pg_ctl stop");
        cluster
    })
    .await
    .unwrap();
    // Down until calls have met it (at least 2 s; longer on a loaded machine, where the calls
    // in flight at the stop may take a while to fail).
    let down_since = Instant::now();
    while down_since.elapsed() < Duration::from_secs(2)
        || (refused.load(Ordering::SeqCst) == 0 && down_since.elapsed() < Duration::from_secs(20))
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start_again().expect("pg_ctl start");
        cluster
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);

    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let bad: Vec<&String> = all
        .iter()
        .filter_map(|(_, a)| match a {
            Answer::Other(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(bad.is_empty(), "answers other than 200 or 503: {bad:#?}");
    let before = all
        .iter()
        .filter(|(t, a)| *t < stopped_at && matches!(a, Answer::Ok(_)))
        .count();
    let unavailable = all
        .iter()
        .filter(|(_, a)| matches!(a, Answer::Unavailable))
        .count();
    eprintln!(
        "{} answers: {before} cards before the stop, {unavailable} 503 while the database was down",
        all.len()
    );
    assert!(before > 0, "calls were answered before the stop");
    assert!(unavailable > 0, "calls came while the database was down");

    // Back: a new call is answered with cards (the pool reconnects).
    let mut back = false;
    for n in 0..50 {
        if let Answer::Ok(_) =
            call(&app.http, &endpoint, client.token(&endpoint), 900_000 + n).await
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "the service answers again once PostgreSQL is back");

    // Nothing acknowledged is lost: every call answered with cards, before, during or after
    // the outage, has its evaluation stored.
    let answered: Vec<String> = all
        .iter()
        .filter_map(|(_, a)| match a {
            Answer::Ok(patient) => Some(patient.clone()),
            _ => None,
        })
        .collect();
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT patient_id) FROM evaluation WHERE role = 'active' AND patient_id = ANY($1)",
    )
    .bind(&answered)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        stored,
        answered.len() as i64,
        "every call answered with cards has its evaluation stored"
    );
    drop(cluster);
}

/// Sets the test database read-only (or back) and ends the service's connections, so that its
/// pool reconnects to a database that refuses every write with `25006`, as a primary demoted by a
/// failover does.
async fn set_read_only(db: &lrt_e2e::service::TestDb, on: bool) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&lrt_e2e::service::admin_url())
        .await
        .unwrap();
    // The name is the test support's own (a fixed prefix and a UUID).
    let setting = if on {
        "SET default_transaction_read_only = on"
    } else {
        "RESET default_transaction_read_only"
    };
    sqlx::query(&format!("ALTER DATABASE {} {setting}", db.name()))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(db.name())
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_gives_503_and_the_service_recovers_by_itself() {
    lrt_fhir::client::install_crypto_provider();
    let client = CdsClient::new("https://ehr.read-only.example");
    let jwks = JwksServer::start(client.jwks()).await;
    let mut issuer = TrustedIssuer::new(client.iss.clone());
    issuer.jwks_url = Some(jwks.url.parse().unwrap());
    let mut auth = AuthConfig::new(vec![issuer]);
    auth.allow_insecure_loopback_http = true;
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.evaluation_time = EvaluationTime::NewestBloodGas;
    })
    .await;
    let endpoint = app.url(PV);
    let answer = |n: usize| call(&app.http, &endpoint, client.token(&endpoint), n);
    assert!(matches!(answer(1).await, Answer::Ok(_)));

    set_read_only(&app.db, true).await;
    // What the service's statements meet: a write refused as read-only (25006), which counts as
    // "unavailable" (503), not as a fault of the service (500).
    let mut refused = None;
    for _ in 0..20 {
        match sqlx::query("INSERT INTO jwt_replay (iss, jti, expires_at) VALUES ('t', 't', now())")
            .execute(&app.pool)
            .await
        {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("25006") => {
                refused = Some(sqlx::Error::Database(e));
                break;
            }
            // A connection ended by the demotion, before the pool reconnects.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(_) => panic!("a write succeeded on the read-only database"),
        }
    }
    let refused = refused.expect("a write refused with 25006");
    assert!(lrt_server::service::error::database_unavailable(&refused));
    for n in 2..8 {
        match answer(n).await {
            Answer::Unavailable => {}
            other => panic!("call {n} on a read-only database: {other:?} instead of a 503"),
        }
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM evaluation WHERE role = 'active'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1, "nothing stored while read-only");

    set_read_only(&app.db, false).await;
    let mut back = None;
    for n in 100..150 {
        if let Answer::Ok(patient) = answer(n).await {
            back = Some(patient);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let patient = back.expect("the service answers again once the database takes writes");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM evaluation WHERE patient_id = $1")
        .bind(&patient)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(stored >= 1, "the answered call is stored");
}
