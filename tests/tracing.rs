//! Traces arrive (issue 11): with an OTLP endpoint configured, the service's spans reach a real
//! OTLP/HTTP receiver, in the trace of the caller's W3C `traceparent`: the request, the
//! pipeline's steps (evaluation, commit) and the page delivery made later by the dispatcher,
//! whose webhook request carries the same trace id. No span attribute holds the patient id.

use std::time::Duration;

use lrt_e2e::otlp::OtlpReceiver;
use lrt_e2e::pager::{PagerReceiver, eventually};
use lrt_e2e::service::TestApp;
use lrt_e2e::synthetic::{BORDERLINE, patient_view};
use lrt_server::service::config::LogFormat;
use lrt_server::service::telemetry;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const PATIENT: &str = "trace-patient-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_in_the_callers_trace_and_the_page_carries_it() {
    // First, as `lrt serve` does: nothing has installed a crypto provider yet (the exporter's
    // client needs one; issue 11 found `lrt serve` panicking here).
    let otlp = OtlpReceiver::start().await;
    let telemetry = telemetry::init_with(LogFormat::Json, Some(otlp.endpoint.clone()));

    let pager = PagerReceiver::start("test-only-webhook-secret").await;
    let (app, _dir) = TestApp::spawn_paging_to(&pager, |c| c.insecure_no_auth = true).await;

    let response = app
        .http
        .post(app.url("/cds-services/lrt-patient-view"))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .body(patient_view(PATIENT, BORDERLINE).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The page goes out later, from the dispatcher, in the same trace.
    assert!(
        eventually(Duration::from_secs(15), || async {
            pager.received().iter().any(|r| r.signature_ok)
        })
        .await,
        "the page is delivered"
    );
    let delivered = pager.received();
    let traceparent = delivered[0].traceparent.clone().unwrap_or_default();
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-")),
        "the webhook request continues the caller's trace: {traceparent:?}"
    );

    let expected = [
        "POST /cds-services/{id}",
        "pipeline.hook",
        "pipeline.evaluate",
        "pipeline.commit",
        "store.commit",
        "page.deliver",
    ];
    let arrived = eventually(Duration::from_secs(15), || {
        telemetry.flush();
        let names: Vec<String> = otlp.spans().into_iter().map(|s| s.name).collect();
        async move { expected.iter().all(|e| names.iter().any(|n| n == e)) }
    })
    .await;
    let spans = otlp.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert!(arrived, "spans received: {names:?}");

    for name in expected {
        for span in spans.iter().filter(|s| s.name == name) {
            assert_eq!(span.trace_id, TRACE_ID, "{name} is in the caller's trace");
        }
    }
    let request = spans
        .iter()
        .find(|s| s.name == "POST /cds-services/{id}")
        .unwrap();
    assert_eq!(request.parent_span_id, CALLER_SPAN, "child of the caller");
    assert_eq!(request.attribute("http.route"), Some("/cds-services/{id}"));
    assert_eq!(request.attribute("http.request.method"), Some("POST"));
    assert_eq!(request.attribute("http.response.status_code"), Some("200"));
    for span in &spans {
        for (key, value) in &span.attributes {
            assert!(
                !value.contains(PATIENT),
                "span {} attribute {key} holds the patient id",
                span.name
            );
        }
    }
    app.stop().await;
}
