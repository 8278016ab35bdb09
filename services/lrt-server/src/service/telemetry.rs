//! Logs, traces and metrics.
//!
//! * Logs: `tracing` with JSON lines (or text) on stderr, filtered by `RUST_LOG` (default `info`).
//!   Request spans carry the request id, method, route and status; never a body, a token, a
//!   patient id or a query string (which can hold patient ids).
//! * Traces: OpenTelemetry over OTLP/HTTP, only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; with the
//!   blocking exporter client (the async one panics on the SDK's own thread, see the stack notes).
//!   A caller's W3C `traceparent` becomes the parent of the request's span, and the trace context
//!   goes out on every FHIR request ([`lrt_fhir::client::set_outgoing_headers`]) and page delivery.
//! * Access log: one line per request when it completes (`INFO`, target `lrt::access`): route
//!   label, method, status, latency, request id; never the query string or a body.
//! * Metrics: Prometheus text at `/metrics` (requests and latency by route and status, 412s, JWT
//!   rejections by reason, FHIR fallback latency, feedback outcomes).

use std::time::Duration;

use axum::http::HeaderMap;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::config::LogFormat;

/// Keeps the trace exporter alive; flushes it on drop.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans ended so far (the batch exporter otherwise sends every 5 s).
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown_with_timeout(Duration::from_secs(3));
        }
    }
}

/// Installs the global subscriber (once per process; later calls are no-ops).
///
/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported over OTLP/HTTP and the W3C trace
/// context is read from each request's `traceparent` and sent on every FHIR and pager request.
pub fn init(format: LogFormat) -> Telemetry {
    init_with(
        format,
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|s| !s.is_empty()),
    )
}

/// [`init`] with the OTLP endpoint given (None: no trace export).
pub fn init_with(format: LogFormat, otlp_endpoint: Option<String>) -> Telemetry {
    // The exporter's HTTP client is rustls without a built-in provider: the process-wide one
    // must be installed before the exporter is built (else it panics inside its builder).
    lrt_fhir::client::install_crypto_provider();
    let provider = otlp_endpoint.and_then(|endpoint| {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .with_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| eprintln!("OpenTelemetry exporter not started: {e}"))
            .ok()?;
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name("lrt-cds").build())
                .build(),
        )
    });
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        lrt_fhir::client::set_outgoing_headers(inject_trace_context);
    }
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("lrt-cds")));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Telemetry { provider }
}

/// The process metrics (CPU, memory, open files, threads, start time) for `/metrics`.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = metrics_process::Collector::default();
        collector.describe();
        collector
    })
}

/// The Prometheus text of every metric, the process metrics read now.
pub fn render(handle: &PrometheusHandle) -> String {
    process_collector().collect();
    handle.render()
}

/// `lrt_build_info` = 1 with the version and the active and shadow rule sets as labels.
pub fn record_build_info(active: &str, shadow: Option<&str>) {
    metrics::gauge!(
        "lrt_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "ruleset" => active.to_string(),
        "shadow_ruleset" => shadow.unwrap_or("").to_string()
    )
    .set(1.0);
}

/// `# HELP` (and the unit) of every metric the service emits.
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "lrt_hook_calls_total",
        "CDS Hooks calls answered, by service and HTTP status"
    );
    describe_histogram!(
        "lrt_hook_duration_seconds",
        Unit::Seconds,
        "Time to answer a CDS Hooks call, by service"
    );
    describe_counter!(
        "lrt_jwt_rejections_total",
        "Client JWTs refused, by reason (missing, expired, replay, replay_store_unavailable, ...)"
    );
    describe_counter!(
        "lrt_prefetch_unavailable_total",
        "Calls whose prefetch and FHIR fallback could not provide the data, by service"
    );
    describe_histogram!(
        "lrt_fhir_fallback_seconds",
        Unit::Seconds,
        "Time spent reading the EHR's FHIR server for data missing from the prefetch, by service"
    );
    describe_histogram!(
        "lrt_group_commit_calls",
        Unit::Count,
        "Calls stored by one group commit (one transaction for the calls that finished together)"
    );
    describe_counter!(
        "lrt_group_commit_failed_total",
        "Group commits that failed and whose calls were then stored one by one"
    );
    describe_counter!(
        "lrt_feedback_total",
        "CDS Hooks feedback requests, by service and result (stored, updated)"
    );
    describe_counter!(
        "lrt_feedback_items_total",
        "Card feedback items, by service and outcome (accepted, overridden)"
    );
    describe_counter!(
        "lrt_pages_total",
        "LRT pager consults written to the outbox, by urgency"
    );
    describe_counter!(
        "lrt_pages_suppressed_total",
        "Consults not paged because the same triggers were paged within the repeat window"
    );
    describe_counter!(
        "lrt_page_deliveries_total",
        "Page delivery attempts, by channel and outcome"
    );
    describe_gauge!(
        "lrt_page_outbox_pending",
        "Page deliveries not yet made (refreshed every 15 s)"
    );
    describe_gauge!(
        "lrt_page_outbox_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest page delivery not yet made (0 when none)"
    );
    describe_gauge!(
        "lrt_page_outbox_dead_letter",
        "Page deliveries given up (dead letter), awaiting a person"
    );
    describe_counter!(
        "lrt_subscription_notifications_total",
        "FHIR Subscription notifications received, by outcome"
    );
    describe_counter!(
        "lrt_subscription_rejections_total",
        "FHIR Subscription notifications refused (bad or missing secret)"
    );
    describe_counter!(
        "lrt_subscription_evaluations_total",
        "Evaluations made from the Subscription inbox, by outcome"
    );
    describe_gauge!(
        "lrt_subscription_inbox",
        "Subscription notifications in the inbox, by state (pending, dead)"
    );
    describe_counter!(
        "lrt_jwks_fetch_failures_total",
        "Failed fetches of a CDS client's JWK Set (jwks_url or allow-listed jku)"
    );
    describe_counter!(
        "lrt_jwt_replay_purged_total",
        "Expired jti replay entries purged"
    );
    describe_counter!(
        "lrt_dashboard_sessions_purged_total",
        "Expired dashboard sessions purged by the housekeeping"
    );
    describe_gauge!(
        "lrt_build_info",
        "1, with the service version and the active and shadow rule sets as labels"
    );
}

/// The caller's trace context from its `traceparent` (and `tracestate`) header; an empty
/// context when there is none or tracing is off.
pub fn caller_context(headers: &HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Adds the current span's `traceparent` to an outgoing request's headers (nothing when tracing
/// is off).
pub fn inject_trace_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// The current span's `traceparent` (None when tracing is off): stored with work done later,
/// such as a page's delivery, so that it joins the trace of the request that caused it.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// The trace context a stored `traceparent` names (empty when it is malformed).
pub fn context_from_traceparent(traceparent: &str) -> opentelemetry::Context {
    let carrier =
        std::collections::HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier))
}

/// The Prometheus recorder. Installed globally once; every app in the process shares it.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests embedding the app): keep ours local.
            let _ = metrics::set_global_recorder(recorder);
            describe_metrics();
            handle
        })
        .clone()
}
