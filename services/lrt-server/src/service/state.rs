//! What every handler shares. Cheap to clone (everything is behind `Arc`s).

use std::sync::Arc;
use std::time::Instant;

use lrt_engine::RuleSet;
use lrt_engine::ruleset::index::RulesRoot;
use lrt_fhir::ClientConfig;
use lrt_hooks::cards::templates::CardText;
use lrt_hooks::orders::OrderCodes;
use lrt_hooks::prefetch::{AllowList, FhirClients, PrefetchConfig, PrefetchPlan};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;
use sqlx::PgPool;

use super::config::Config;
use super::{StartError, store, telemetry};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    /// Evaluations are committed through it, with the calls committing at the same time.
    pub commits: store::group::GroupCommit,
    /// The active rule-set version: what clinicians see.
    pub rules: Arc<RuleSet>,
    /// The shadow version, evaluated and stored, never shown.
    pub shadow: Option<Arc<RuleSet>>,
    pub auth: Arc<Auth>,
    pub metrics: PrometheusHandle,
    /// The discovery document (built once from the active rule set's search plan).
    pub discovery: Arc<lrt_hooks::model::Discovery>,
    /// Prefetch templates and the fallback's search plan of the active rule set.
    pub plan: Arc<PrefetchPlan>,
    /// FHIR allow list and time budgets of the prefetch fallback.
    pub prefetch: Arc<PrefetchConfig>,
    /// Which draft orders mean ECMO, inhaled vasodilator, PEEP change (the active rule set's).
    pub order_codes: Arc<OrderCodes>,
    /// The active rule set's card texts.
    pub card_text: Arc<CardText>,
    /// Issuers of the quality team: they read every tenant's rows on `/api/v1`.
    pub quality_issuers: Arc<Vec<String>>,
    /// Base of the dashboard links on cards.
    pub dashboard: Arc<url::Url>,
    /// How people sign in to the dashboard (`[dashboard]`).
    pub dashboard_auth: Arc<super::dashboard::identity::DashboardAuth>,
    /// The LRT pager (None: no channel configured, no pages written).
    pub pager: Option<super::paging::Pager>,
    /// The EHR's FHIR server for evaluations without a CDS Hooks call.
    pub ehr: Option<Arc<Ehr>>,
    /// Wakes this process's Subscription inbox worker when a notification is stored.
    pub inbox_wake: Arc<tokio::sync::Notify>,
    pub started: Instant,
}

/// The EHR as seen by evaluations without a hook.
pub struct Ehr {
    pub client: lrt_fhir::FhirClient,
    /// The shared secret of FHIR Subscription notifications (None: they are refused).
    pub subscription_secret: Option<SecretString>,
}

/// A secret from a file (trailing whitespace ignored) or else an environment variable, in a
/// type that never prints it (`Debug` redacts) and wipes it on drop.
pub fn read_secret(
    file: Option<&std::path::Path>,
    env: Option<&str>,
    default_env: &str,
) -> Result<Option<SecretString>, String> {
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .map(|s| Some(SecretString::from(s.trim_end().to_string())))
            .map_err(|e| format!("cannot read {}: {e}", path.display()));
    }
    Ok(std::env::var(env.unwrap_or(default_env))
        .ok()
        .filter(|s| !s.is_empty())
        .map(SecretString::from))
}

/// The SMART Backend Services client of `[ehr.smart]` (its key read now: a missing or wrong
/// key stops the start).
fn backend_auth(
    smart: &super::config::SmartConfig,
) -> Result<Arc<lrt_fhir::smart::BackendAuth>, String> {
    use lrt_fhir::smart::{BackendAuth, BackendAuthConfig, SigningKey};
    let key = SigningKey::from_pem_file(&smart.private_key_file, smart.algorithm, &smart.key_id)
        .map_err(|e| format!("ehr.smart: {e}"))?;
    let token_url = smart
        .token_url
        .as_deref()
        .map(url::Url::parse)
        .transpose()
        .map_err(|e| format!("ehr.smart.token_url: {e}"))?;
    Ok(BackendAuth::new(BackendAuthConfig {
        client_id: smart.client_id.clone(),
        token_url,
        scope: smart.scope.clone(),
        key,
    }))
}

/// The dashboard's sign-in of `[dashboard]` (keys read now: a missing key file stops the start).
fn dashboard_auth(
    config: &Config,
    dashboard: &url::Url,
) -> Result<super::dashboard::identity::DashboardAuth, String> {
    use super::dashboard::identity::DashboardAuth;
    let d = &config.dashboard;
    let loopback_http = config
        .auth
        .as_ref()
        .is_some_and(|a| a.allow_insecure_loopback_http);
    if let Some(p) = &d.proxy {
        let mut a = lrt_auth::AssertionConfig::new(p.issuer.clone(), p.audience.clone());
        a.jwks_url = p.jwks_url.clone();
        a.jwks_file = p.jwks_file.clone();
        if let Some(algorithms) = &p.algorithms {
            a.algorithms = algorithms.clone();
        }
        a.allow_insecure_loopback_http = loopback_http;
        let verifier =
            lrt_auth::AssertionVerifier::new(a).map_err(|e| format!("dashboard.proxy: {e}"))?;
        let header = axum::http::HeaderName::try_from(p.header.as_str())
            .map_err(|e| format!("dashboard.proxy.header: {e}"))?;
        return Ok(DashboardAuth::Proxy {
            header,
            verifier: Box::new(verifier),
            access: d.access.clone(),
        });
    }
    if let Some(o) = &d.oidc {
        let oidc = super::dashboard::oidc::Oidc::new(
            o.clone(),
            d.access.clone(),
            dashboard,
            std::time::Duration::from_secs(d.session_ttl_s),
            loopback_http,
        )
        .map_err(|e| e.to_string())?;
        return Ok(DashboardAuth::Oidc(Box::new(oidc)));
    }
    Ok(DashboardAuth::Off)
}

/// How CDS clients are authenticated.
pub enum Auth {
    /// Signed JWTs from trusted issuers (production).
    Jwt(lrt_auth::Verifier),
    /// No authentication: development on loopback only, when configured explicitly.
    InsecureNone,
}

impl AppState {
    /// Every check, then the migrations (when `migrate_on_start`): a start with a bad
    /// configuration, a missing key file or a rule set that does not load stops before the
    /// database is touched.
    pub async fn new(config: Config) -> Result<AppState, StartError> {
        let state = AppState::checked(config)?;
        if state.config.migrate_on_start {
            store::MIGRATOR.run(&state.pool).await?;
        }
        Ok(state)
    }

    /// The state built from `config` with every check `lrt serve` makes (configuration, rule
    /// sets, key and secret files, allow list, card texts, paging channels) and no database
    /// I/O: the pool is lazy. `lrt check-config` stops here.
    pub fn checked(config: Config) -> Result<AppState, StartError> {
        config.check()?;
        let root = RulesRoot::open(&config.rules_dir)?;
        let rules = Arc::new(root.load_active()?);
        let shadow = if config.shadow {
            root.load_shadow()?.map(Arc::new)
        } else {
            None
        };
        let url = config.database_url.clone().ok_or_else(|| {
            StartError::Config(super::config::ConfigError::Invalid(
                "no database: set database_url in the configuration or DATABASE_URL".into(),
            ))
        })?;
        let pool = store::connect_lazy(&url, config.database_max_connections)?;
        let auth = match (&config.auth, config.insecure_no_auth) {
            (_, true) => {
                tracing::warn!("authentication is OFF (insecure_no_auth): development only");
                Auth::InsecureNone
            }
            (Some(auth), false) => {
                let verifier = lrt_auth::Verifier::new(auth.clone())
                    .map_err(|e| StartError::Auth(e.to_string()))?;
                if verifier.dev_mode() {
                    tracing::warn!("auth.dev_mode_key_file is set: development keys are trusted");
                }
                Auth::Jwt(verifier)
            }
            (None, false) => {
                return Err(StartError::Auth("no [auth] section".into()));
            }
        };
        let invalid = |m: String| StartError::Config(super::config::ConfigError::Invalid(m));
        let allow_list =
            AllowList::new(config.fhir_allow.iter()).map_err(|e| invalid(e.to_string()))?;
        let prefetch = PrefetchConfig {
            allow_list,
            client: ClientConfig {
                timeout: config.limits.fhir_timeout(),
                retries: 1,
                backoff: std::time::Duration::from_millis(50),
                max_pages: 20,
                ..ClientConfig::default()
            },
            key_timeout: config.limits.fhir_timeout() + config.limits.fhir_timeout() / 2,
            clients: FhirClients::default(),
        };
        let order_codes =
            OrderCodes::for_rules(&rules).map_err(|e| invalid(format!("order codes: {}", e.0)))?;
        let card_text = CardText::for_rules(&rules).map_err(|errors| {
            invalid(format!(
                "card texts of {}: {}",
                rules.label(),
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        let problems = order_codes.check(&rules);
        if !problems.is_empty() {
            return Err(invalid(format!("order codes: {}", problems.join("; "))));
        }
        let allowed = |u: &str| {
            url::Url::parse(u)
                .map(|u| prefetch.allow_list.allows(&u))
                .unwrap_or(false)
        };
        let pager = if config.paging.enabled() {
            if let Some(f) = &config.paging.fhir
                && !allowed(&f.base)
            {
                return Err(invalid(format!(
                    "paging.fhir.base {:?} is not in fhir_allow",
                    f.base
                )));
            }
            let channels = super::paging::channel::Channels::new(&config.paging)
                .map_err(|e| invalid(e.to_string()))?;
            Some(super::paging::Pager {
                config: Arc::new(config.paging.clone()),
                channels: Arc::new(channels),
                wake: Arc::new(tokio::sync::Notify::new()),
            })
        } else {
            None
        };
        let ehr = match &config.ehr.fhir_base {
            Some(base) => {
                if !allowed(base) {
                    return Err(invalid(format!(
                        "ehr.fhir_base {base:?} is not in fhir_allow"
                    )));
                }
                let token = read_secret(
                    config.ehr.token_file.as_deref(),
                    config.ehr.token_env.as_deref(),
                    "LRT_EHR_FHIR_TOKEN",
                )
                .map_err(|e| invalid(format!("ehr: {e}")))?;
                let subscription_secret = read_secret(
                    config.ehr.subscription_secret_file.as_deref(),
                    config.ehr.subscription_secret_env.as_deref(),
                    "LRT_SUBSCRIPTION_SECRET",
                )
                .map_err(|e| invalid(format!("ehr: {e}")))?;
                let mut client = lrt_fhir::FhirClient::new(base, token, prefetch.client)
                    .map_err(|e| invalid(format!("ehr.fhir_base: {e}")))?;
                if let Some(smart) = &config.ehr.smart {
                    client = client.with_backend_auth(backend_auth(smart).map_err(invalid)?);
                }
                Some(Arc::new(Ehr {
                    client,
                    subscription_secret,
                }))
            }
            None => None,
        };
        let dashboard = url::Url::parse(&format!("{}/", config.dashboard_base()))
            .map_err(|e| invalid(format!("dashboard_base_url: {e}")))?;
        let dashboard_auth = dashboard_auth(&config, &dashboard).map_err(invalid)?;
        let metrics = telemetry::metrics();
        telemetry::record_build_info(
            &rules.label(),
            shadow.as_ref().map(|s| s.label()).as_deref(),
        );
        let commits = store::group::GroupCommit::new(&pool, pager.as_ref().map(|p| p.wake.clone()))
            .map_err(StartError::Writer)?;
        Ok(AppState {
            discovery: Arc::new(lrt_hooks::services::discovery(&rules)),
            plan: Arc::new(PrefetchPlan::new(&rules)),
            prefetch: Arc::new(prefetch),
            order_codes: Arc::new(order_codes),
            card_text: Arc::new(card_text),
            quality_issuers: Arc::new(config.quality_issuers.clone()),
            dashboard: Arc::new(dashboard),
            dashboard_auth: Arc::new(dashboard_auth),
            pager,
            ehr,
            inbox_wake: Arc::new(tokio::sync::Notify::new()),
            config: Arc::new(config),
            commits,
            pool,
            rules,
            shadow,
            auth: Arc::new(auth),
            metrics,
            started: Instant::now(),
        })
    }
}
