//! `lrt serve`: the CDS Hooks 2.0 service and its API.
//!
//! * [`config`]: file + environment configuration;
//! * [`state`]: what every handler shares (rule sets, pool, verifier, FHIR clients);
//! * [`auth`]: the caller as extractors (`CdsClient`, `HookCaller`, `ApiCaller`) and tenancy;
//! * [`routes`]: one module per resource (CDS Hooks, feedback, evaluations API, pages,
//!   Subscription notifications and their inbox, health, metrics): thin adapters;
//! * [`pipeline`]: the one evaluation pipeline (snapshot source → engine, active and shadow →
//!   answer → one transaction) behind the hook call and the EHR-read evaluations;
//! * [`inbox`]: Subscription notifications stored before the EHR is read, and their worker;
//! * [`quality`]: the quality team's aggregates (`/api/v1/quality/...`), computed in SQL;
//! * [`dashboard`]: the quality dashboard page (`/dashboard`) and its sign-in (identity-aware
//!   proxy or OpenID Connect);
//! * [`replay`]: `lrt replay`, inputs re-evaluated with a chosen rule-set version into
//!   `replay_run` / `replay_outcome`;
//! * [`paging`]: the LRT pager consult (outbox, dispatcher, channels);
//! * [`housekeeping`]: outbox backlog gauges, the purge of expired `jti` entries and the
//!   retention purge ([`retention`]), on a timer;
//! * [`store`]: PostgreSQL persistence; [`error`]: the one error type → OperationOutcome;
//! * [`edges`]: what is refused at the door (NUL characters PostgreSQL cannot store);
//! * [`telemetry`]: logs, traces, metrics.
//!
//! [`App::build`] assembles everything; tests spawn it on a random port with a fresh database.

pub mod auth;
pub mod config;
pub mod dashboard;
pub mod edges;
pub mod error;
pub mod housekeeping;
pub mod inbox;
pub mod paging;
pub mod pipeline;
pub mod quality;
pub mod queue;
pub mod replay;
pub mod retention;
pub mod routes;
pub mod state;
pub mod store;
pub mod telemetry;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, Request, header};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use config::Config;
pub use error::ApiError;
pub use state::AppState;

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("rule set: {0}")]
    RuleSet(#[from] lrt_engine::RuleSetError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("authentication: {0}")]
    Auth(String),
    #[error("cannot start the group-commit writer's thread: {0}")]
    Writer(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The assembled service.
pub struct App {
    pub state: AppState,
    pub router: Router,
}

impl App {
    /// Loads the rule sets, connects the pool (and migrates if configured), builds the router.
    pub async fn build(config: Config) -> Result<App, StartError> {
        let state = AppState::new(config).await?;
        let router = router(state.clone());
        Ok(App { state, router })
    }

    /// Serves (and, with paging configured, runs the page dispatcher; with an `[ehr]`, the
    /// Subscription inbox worker) until `shutdown` resolves, then drains in-flight requests,
    /// deliveries and evaluations.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        // TCP_NODELAY: a response must not wait for the client's delayed ACK (Nagle).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let dispatcher = self
            .state
            .pager
            .clone()
            .filter(|p| p.config.dispatcher)
            .map(|pager| {
                let d = paging::dispatch::Dispatcher::new(self.state.pool.clone(), pager);
                tokio::spawn(d.run(stopped.clone()))
            });
        let housekeeping = tokio::spawn(housekeeping::run(
            self.state.pool.clone(),
            self.state.config.retention.clone(),
            stopped.clone(),
        ));
        let jwks = tokio::spawn(auth::load_jwks(self.state.auth.clone(), stopped.clone()));
        let inbox_worker = (self.state.ehr.is_some() && self.state.config.ehr.inbox.worker)
            .then(|| tokio::spawn(inbox::worker::Worker::new(self.state.clone()).run(stopped)));
        let served = axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
        // The commits of calls whose clients went away are finished before the process ends.
        self.state.commits.flushed().await;
        if let Some(d) = dispatcher {
            let _ = d.await;
        }
        if let Some(w) = inbox_worker {
            let _ = w.await;
        }
        let _ = housekeeping.await;
        let _ = jwks.await;
        served
    }
}

/// The router with every route and layer.
pub fn router(state: AppState) -> Router {
    let limits = state.config.limits.clone();
    let cors = cors(&state.config.cors_origins);
    Router::new()
        .merge(routes::hooks::routes())
        .merge(routes::api::routes())
        .merge(routes::pages::routes())
        .merge(routes::quality::routes())
        .merge(routes::notifications::routes())
        .merge(routes::subscription::routes())
        .merge(routes::health::routes())
        .merge(dashboard::routes())
        .fallback(routes::not_found)
        .with_state(state)
        // A panic in a handler is a 500 OperationOutcome and a log line, never a dropped
        // connection.
        .layer(CatchPanicLayer::custom(error::panic_response))
        // NUL in a query parameter or a JSON string: 400 naming the field.
        .layer(axum::middleware::from_fn(edges::refuse_nul))
        // The extractors' own limit (axum's default is 2 MiB) and the transport's are both
        // the configured one.
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(cors)
        .layer(RequestBodyLimitLayer::new(limits.body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout() + Duration::from_millis(500),
        ))
        // 413, 405, the timeout's 503 and the panic's 500 answer an OperationOutcome too.
        .layer(axum::middleware::map_response(
            error::outcome_for_bare_errors,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(access_log),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
}

/// The span of one request, named and attributed after the OpenTelemetry HTTP semantic
/// conventions, child of the caller's `traceparent` when it sent one. The route label only:
/// paths and query strings can carry patient ids.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let route = routes::route_label(request.uri().path());
    let method = request.method();
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        request_id = %id,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(telemetry::caller_context(request.headers()));
    span
}

/// The access log: one line per completed request (status and latency; the request span adds
/// the request id, method and route).
fn access_log<B>(response: &axum::http::Response<B>, latency: Duration, span: &tracing::Span) {
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    tracing::info!(
        target: "lrt::access",
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request completed"
    );
}

/// CORS for browser-based CDS clients (checklist A/H.34): the preflight needs no JWT, the
/// headers are on every response (the POST too), `Authorization` is listed by name.
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([REQUEST_ID.clone()])
        .max_age(Duration::from_secs(600))
}

/// Binds the configured address.
pub async fn listen(config: &Config) -> Result<TcpListener, StartError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
