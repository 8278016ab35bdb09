//! No patient identifier in the service's logs (issue 8): the service's own log output (JSON
//! lines at `info`, as in production) is captured while MIMIC patients go through every door
//! that reads them (hook calls with and without prefetch, a hostile prefetch, a NUL, a failed
//! EHR read behind `POST /api/v1/evaluations`, a Subscription notification whose resource cannot
//! be read), and is searched for every patient id of the fixtures.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use lrt_e2e::fhir_server::FhirServer;
use lrt_e2e::hook_requests;
use lrt_e2e::service::TestApp;
use lrt_server::service::config::EvaluationTime;
use reqwest::StatusCode;
use serde_json::json;

/// The captured log lines (one global subscriber per test binary).
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(move || Capture(sink.clone()))
            .init();
        buffer
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_of_real_traffic_hold_no_patient_id() {
    let log = captured();
    lrt_fhir::client::install_crypto_provider();
    let fhir = std::thread::spawn(|| {
        let server = FhirServer::start();
        let rt = tokio::runtime::Runtime::new().unwrap();
        assert_eq!(rt.block_on(server.load_mimic()), 86);
        server
    })
    .join()
    .expect("the FHIR server starts and loads");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("subscription");
    std::fs::write(&secret, "test-only-secret\n").unwrap();
    let base = fhir.base.clone();
    let (b1, s1) = (base.clone(), secret.clone());
    let app = TestApp::spawn(move |c| {
        c.insecure_no_auth = true;
        c.evaluation_time = EvaluationTime::NewestBloodGas;
        c.fhir_allow = vec![b1.clone()];
        c.ehr.fhir_base = Some(b1);
        c.ehr.subscription_secret_file = Some(s1);
    })
    .await;
    // A second service whose EHR is down (a closed port): every EHR read fails.
    let down = "http://127.0.0.1:9/fhir".to_string();
    let (b2, s2) = (down.clone(), secret.clone());
    let app_down = TestApp::spawn(move |c| {
        c.insecure_no_auth = true;
        c.evaluation_time = EvaluationTime::NewestBloodGas;
        c.fhir_allow = vec![b2.clone()];
        c.ehr.fhir_base = Some(b2);
        c.ehr.subscription_secret_file = Some(s2);
    })
    .await;

    let pv = "/cds-services/lrt-patient-view";
    let post = |app: &TestApp, path: &str, body: serde_json::Value| {
        app.http
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let requests = hook_requests();
    for r in requests.iter().take(12) {
        let mut with = r.json.clone();
        with["fhirServer"] = json!(base);
        with["hookInstance"] = json!(uuid::Uuid::new_v4().to_string());
        let res = post(&app, pv, with.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let mut without = with.clone();
        without["hookInstance"] = json!(uuid::Uuid::new_v4().to_string());
        without.as_object_mut().unwrap().remove("prefetch");
        assert_eq!(
            post(&app, pv, without).await.unwrap().status(),
            StatusCode::OK
        );
        // Prefetch missing and the EHR down: 412.
        let mut unreachable = with.clone();
        unreachable["hookInstance"] = json!(uuid::Uuid::new_v4().to_string());
        unreachable["fhirServer"] = json!(down);
        unreachable.as_object_mut().unwrap().remove("prefetch");
        let status = post(&app_down, pv, unreachable).await.unwrap().status();
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        // A NUL in the patient id: 400.
        let mut nul = with.clone();
        nul["hookInstance"] = json!(uuid::Uuid::new_v4().to_string());
        nul["context"]["patientId"] = json!(format!("{}\u{0}", r.patient));
        assert_eq!(
            post(&app, pv, nul).await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
        // The evaluations API with the EHR down: 503, and a log line about it.
        let body = json!({"patient": format!("Patient/{}", r.patient)});
        let status = post(&app_down, "/api/v1/evaluations", body)
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        // A Subscription notification whose resource cannot be read (id-only, EHR down).
        let notification = json!({"resourceType": "Bundle", "type": "history", "entry": [
            {"resource": {"resourceType": "SubscriptionStatus", "status": "active",
             "type": "event-notification", "notificationEvent": [{"eventNumber": "1",
             "focus": {"reference": format!("Observation/{}-obs", r.patient)}}]}}]});
        let res = app_down
            .http
            .post(app_down.url("/fhir/subscription-notification"))
            .header("content-type", "application/fhir+json")
            .bearer_auth("test-only-secret")
            .body(notification.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    // The inbox worker has tried every notification (and logged its failures).
    let tried = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM subscription_inbox WHERE attempts = 0")
            .fetch_one(&app_down.pool)
            .await
            .unwrap()
            == 0
    };
    for _ in 0..100 {
        if tried().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(tried().await, "the inbox worker tried every notification");
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let lines = text.lines().count();
    assert!(lines >= 24, "the service logged ({lines} lines)");
    assert!(
        text.contains("EHR fetch failed"),
        "the failing path was logged"
    );
    let leaked: Vec<&str> = requests
        .iter()
        .map(|r| r.patient.as_str())
        .filter(|id| {
            let number = id.trim_start_matches("mimic-");
            text.contains(id) || text.contains(number)
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "patient ids in the logs: {leaked:?}\n{text}"
    );
    eprintln!("{lines} log lines captured, no patient id in them");
}
