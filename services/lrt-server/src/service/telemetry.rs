//! Logs, traces and metrics.
//!
//! * Logs: `tracing` with JSON lines (or text) on stderr, filtered by `RUST_LOG` (default `info`).
//!   Request spans carry the request id, method, route and status; never a body, a token, a
//!   patient id or a query string (which can hold patient ids).
//! * Traces: OpenTelemetry over OTLP/HTTP, only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; with the
//!   blocking exporter client (the async one panics on the SDK's own thread, see the stack notes).
//! * Metrics: Prometheus text at `/metrics` (requests and latency by route and status, 412s, JWT
//!   rejections by reason, FHIR fallback latency, feedback outcomes).

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::config::LogFormat;

/// Keeps the trace exporter alive; flushes it on drop.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown_with_timeout(Duration::from_secs(3));
        }
    }
}

/// Installs the global subscriber (once per process; later calls are no-ops).
pub fn init(format: LogFormat) -> Telemetry {
    let provider = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
        .and_then(|endpoint| {
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
            handle
        })
        .clone()
}
