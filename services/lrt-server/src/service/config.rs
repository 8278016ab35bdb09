//! Configuration of `lrt serve`: a TOML file (`--config`, optional) overlaid by environment
//! variables `LRT_<KEY>` (nested keys with `__`, e.g. `LRT_LIMITS__BODY_BYTES`), plus the
//! conventional `DATABASE_URL`. Secrets (database password, keys) come from the environment or
//! from files the configuration names, never from the repository.
//!
//! ```toml
//! listen = "0.0.0.0:8080"
//! public_base_url = "https://lrt.hospital.example"   # what CDS clients call; the JWT `aud`
//! database_url = "postgres://lrt@db/lrt"             # or DATABASE_URL
//! rules_dir = "rules"                                # active and shadow versions from rules/index.json
//! fhir_allow = ["https://ehr.hospital.example/fhir"] # FHIR servers the service may call
//!
//! [[auth.issuers]]
//! iss = "https://ehr.hospital.example"
//! jwks_file = "/etc/lrt/ehr-jwks.json"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The top-level keys, as environment variables read them (`LRT_LISTEN`, `LRT_LIMITS__BODY_BYTES`).
const KEYS: &[&str] = &[
    "listen",
    "public_base_url",
    "database_url",
    "database_max_connections",
    "migrate_on_start",
    "rules_dir",
    "shadow",
    "fhir_allow",
    "dashboard_base_url",
    "dashboard",
    "cors_origins",
    "limits",
    "auth",
    "insecure_no_auth",
    "quality_issuers",
    "evaluation_time",
    "log_format",
    "paging",
    "ehr",
    "retention",
];

/// Everything `lrt serve` needs. Every key has a default except the database URL and, unless
/// `insecure_no_auth` is set, `auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The service's public base URL as CDS clients reach it (behind proxies). Discovery is at
    /// `{public_base_url}/cds-services`; a JWT's `aud` must name the endpoint under it.
    pub public_base_url: String,
    /// PostgreSQL URL. Never printed (it may hold a password).
    pub database_url: Option<String>,
    /// Pool size. The group-commit writer has its own connection besides
    /// ([`crate::service::store::group::MAX_WRITERS`]).
    pub database_max_connections: u32,
    /// Apply pending migrations at start (under sqlx's advisory lock).
    pub migrate_on_start: bool,
    /// The rules root (index.json with the active and optional shadow version).
    pub rules_dir: PathBuf,
    /// Evaluate and store the shadow version named in the index, if any.
    pub shadow: bool,
    /// FHIR base URLs the service may call (prefix match on scheme, host, port and path).
    pub fhir_allow: Vec<String>,
    /// Base URL of the dashboard links on cards (`{dashboard_base_url}/dashboard/evaluations/{id}`);
    /// defaults to `public_base_url`.
    pub dashboard_base_url: Option<String>,
    /// The quality dashboard's sign-in (`[dashboard]`: identity-aware proxy or OpenID Connect).
    pub dashboard: super::dashboard::config::DashboardConfig,
    /// Origins allowed by CORS for browser-based CDS clients; `["*"]` allows any (no
    /// credentials are involved: the JWT travels in `Authorization`, listed by name).
    pub cors_origins: Vec<String>,
    pub limits: Limits,
    /// Trusted CDS clients (issuers), their keys and algorithms (`lrt_auth::AuthConfig`).
    pub auth: Option<lrt_auth::AuthConfig>,
    /// Development only: accept calls without a JWT. Refused unless the listen address is a
    /// loopback address; never on by default.
    pub insecure_no_auth: bool,
    /// Issuers (`iss` of trusted CDS clients) of the quality team: on `/api/v1` they read and act
    /// on every tenant's data. Any other caller sees only the rows its own issuer and `tenant`
    /// created (a token without `tenant`, the rows created without one).
    pub quality_issuers: Vec<String>,
    /// The evaluation time: `call` (the time of the call: production) or `newest_blood_gas`
    /// (the time of the patient's newest arterial PaO2: for de-identified, date-shifted data
    /// sets such as the MIMIC-IV demo, whose dates lie in the 22nd century; never in production).
    pub evaluation_time: EvaluationTime,
    /// Log format: `json` (production) or `text`.
    pub log_format: LogFormat,
    /// The LRT pager consult: channels, retries, dispatcher (`[paging]`).
    pub paging: super::paging::PagingConfig,
    /// The EHR's FHIR server for evaluations without a CDS Hooks call (`[ehr]`).
    pub ehr: EhrConfig,
    /// How long patient data and rows are kept (`[retention]`; both off by default).
    pub retention: super::retention::RetentionConfig,
}

/// `[ehr]`: where evaluations that do not come with a CDS Hooks call (FHIR Subscription
/// notifications, `POST /api/v1/evaluations`) read the patient's data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EhrConfig {
    /// The EHR's FHIR base URL (must be in `fhir_allow`).
    pub fhir_base: Option<String>,
    /// A file holding the bearer token for it, or the variable holding it (default
    /// `LRT_EHR_FHIR_TOKEN`); none: no `Authorization` header.
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// The secret a Subscription sends (its `channel.header`, `Authorization: Bearer <secret>`),
    /// from a file or a variable (default `LRT_SUBSCRIPTION_SECRET`). Without one, the
    /// notification endpoint answers 401 to every call.
    pub subscription_secret_file: Option<PathBuf>,
    pub subscription_secret_env: Option<String>,
    /// The worker that evaluates stored Subscription notifications (`[ehr.inbox]`).
    pub inbox: super::inbox::InboxConfig,
    /// SMART Backend Services (`[ehr.smart]`): access tokens from the EHR's authorization server
    /// with a signed client assertion, instead of a static token.
    pub smart: Option<SmartConfig>,
}

/// `[ehr.smart]`: the service as a SMART Backend Services client of the EHR.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartConfig {
    /// The client id the EHR registered for this service.
    pub client_id: String,
    /// The token endpoint; by default read from `{fhir_base}/.well-known/smart-configuration`.
    pub token_url: Option<String>,
    /// The SMART scopes asked for, space-separated (e.g. `system/Patient.rs system/Observation.rs`).
    pub scope: String,
    /// The private key (PKCS#8 PEM) whose public key the EHR holds (its JWK Set).
    pub private_key_file: PathBuf,
    /// The key's `kid` as registered.
    pub key_id: String,
    /// `ES384` (default) or `RS384`.
    #[serde(default = "es384")]
    pub algorithm: lrt_fhir::smart::Algorithm,
}

fn es384() -> lrt_fhir::smart::Algorithm {
    lrt_fhir::smart::Algorithm::ES384
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationTime {
    Call,
    NewestBloodGas,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// Request size and time limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted (a CDS Hooks call with a full prefetch).
    pub body_bytes: usize,
    /// Time budget of one request, FHIR fallback included.
    pub request_timeout_ms: u64,
    /// Time budget of one FHIR call of the prefetch fallback.
    pub fhir_timeout_ms: u64,
}

impl Limits {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn fhir_timeout(&self) -> Duration {
        Duration::from_millis(self.fhir_timeout_ms)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 8 * 1024 * 1024,
            request_timeout_ms: 10_000,
            fhir_timeout_ms: 3_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("a socket address"),
            public_base_url: "http://127.0.0.1:8080".into(),
            database_url: None,
            database_max_connections: 16,
            migrate_on_start: true,
            rules_dir: PathBuf::from("rules"),
            shadow: true,
            fhir_allow: Vec::new(),
            dashboard_base_url: None,
            dashboard: super::dashboard::config::DashboardConfig::default(),
            cors_origins: vec!["*".into()],
            limits: Limits::default(),
            auth: None,
            insecure_no_auth: false,
            quality_issuers: Vec::new(),
            evaluation_time: EvaluationTime::Call,
            log_format: LogFormat::Json,
            paging: super::paging::PagingConfig::default(),
            ehr: EhrConfig::default(),
            retention: super::retention::RetentionConfig::default(),
        }
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error(transparent)]
    Figment(#[from] Box<figment::Error>),
}

impl Config {
    /// Defaults, then the file (if given), then `LRT_*` variables, then `DATABASE_URL`; checked.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let config = Config::read(file)?;
        config.check()?;
        Ok(config)
    }

    /// [`Config::load`] without the checks of what only `lrt serve` needs (`lrt migrate` and
    /// `lrt purge` need the database and `[retention]`, not `[auth]`).
    pub fn read(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "{}: no such file",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        // Only the configuration's own keys: other `LRT_*` variables (LRT_SHARED_DIR...) are not config.
        figment = figment.merge(
            Env::prefixed("LRT_")
                .split("__")
                // The key keeps the variable's case (`LISTEN`, `LIMITS.BODY_BYTES`).
                .filter(|key| {
                    let top = key.as_str().split('.').next().unwrap_or("");
                    KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
                }),
        );
        let mut config: Config = figment.extract().map_err(Box::new)?;
        if config.database_url.is_none() {
            config.database_url = std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty());
        }
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn check(&self) -> Result<(), ConfigError> {
        let base = url::Url::parse(&self.public_base_url).map_err(|e| {
            ConfigError::Invalid(format!("public_base_url {:?}: {e}", self.public_base_url))
        })?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(ConfigError::Invalid(
                "public_base_url must be an http(s) URL".into(),
            ));
        }
        for a in &self.fhir_allow {
            let u = url::Url::parse(a)
                .map_err(|e| ConfigError::Invalid(format!("fhir_allow {a:?}: {e}")))?;
            if !matches!(u.scheme(), "https" | "http") {
                return Err(ConfigError::Invalid(format!(
                    "fhir_allow {a:?}: not an http(s) URL"
                )));
            }
        }
        if self.insecure_no_auth && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(
                "insecure_no_auth is only allowed on a loopback listen address".into(),
            ));
        }
        if self.auth.is_none() && !self.insecure_no_auth {
            return Err(ConfigError::Invalid(
                "no [auth] section: configure the trusted CDS clients (or, for local development only, insecure_no_auth = true)".into(),
            ));
        }
        for q in &self.quality_issuers {
            let trusted = self
                .auth
                .as_ref()
                .is_some_and(|a| a.issuers.iter().any(|i| i.iss == *q));
            if !trusted {
                return Err(ConfigError::Invalid(format!(
                    "quality_issuers: {q:?} is not an issuer of [auth] (a typo would leave the quality team seeing nothing)"
                )));
            }
        }
        let issuers: Vec<&str> = self
            .auth
            .as_ref()
            .map(|a| a.issuers.iter().map(|i| i.iss.as_str()).collect())
            .unwrap_or_default();
        self.dashboard
            .check(&issuers)
            .map_err(ConfigError::Invalid)?;
        if let Some(base) = &self.dashboard_base_url {
            url::Url::parse(base)
                .map_err(|e| ConfigError::Invalid(format!("dashboard_base_url {base:?}: {e}")))?;
        }
        self.paging.check().map_err(ConfigError::Invalid)?;
        self.retention.check().map_err(ConfigError::Invalid)?;
        if let Some(smart) = &self.ehr.smart {
            if self.ehr.token_file.is_some() || self.ehr.token_env.is_some() {
                return Err(ConfigError::Invalid(
                    "ehr: give either ehr.smart (SMART Backend Services) or a static token (token_file / token_env), not both".into(),
                ));
            }
            if let Some(url) = &smart.token_url {
                let u = url::Url::parse(url).map_err(|e| {
                    ConfigError::Invalid(format!("ehr.smart.token_url {url:?}: {e}"))
                })?;
                let loopback = u
                    .host_str()
                    .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]");
                if u.scheme() != "https" && !loopback {
                    return Err(ConfigError::Invalid(format!(
                        "ehr.smart.token_url {url:?}: must be https (the client assertion must not travel in clear)"
                    )));
                }
            }
            if smart.scope.trim().is_empty() || smart.client_id.trim().is_empty() {
                return Err(ConfigError::Invalid(
                    "ehr.smart: client_id and scope must not be empty".into(),
                ));
            }
        }
        self.ehr
            .inbox
            .check(self.limits.fhir_timeout())
            .map_err(ConfigError::Invalid)?;
        if self.limits.body_bytes == 0 || self.limits.request_timeout_ms == 0 {
            return Err(ConfigError::Invalid("limits must be positive".into()));
        }
        Ok(())
    }

    /// The public base URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.public_base_url.trim_end_matches('/')
    }

    pub fn dashboard_base(&self) -> &str {
        self.dashboard_base_url
            .as_deref()
            .unwrap_or(&self.public_base_url)
            .trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quality_issuer_must_be_a_trusted_issuer() {
        let mut c = Config {
            auth: Some(lrt_auth::AuthConfig::new(vec![
                lrt_auth::TrustedIssuer::new("https://ehr-a.example"),
            ])),
            quality_issuers: vec!["https://quality.example".into()],
            ..Config::default()
        };
        let e = c
            .check()
            .expect_err("an unknown quality issuer")
            .to_string();
        assert!(
            e.contains("quality_issuers") && e.contains("quality.example"),
            "{e}"
        );
        c.quality_issuers = vec!["https://ehr-a.example".into()];
        assert!(c.check().is_ok(), "{:?}", c.check());
    }

    /// The example configuration of `deploy/` is a configuration this version accepts (every
    /// key known, every value checked), so that a copy of it starts.
    #[test]
    fn the_example_configuration_is_valid() {
        let config = deploy_config("deploy/lrt.example.toml");
        assert!(config.ehr.inbox.worker);
        assert_eq!(config.ehr.inbox.horizon_s, 6 * 3600);
    }

    /// So are the configurations the Kubernetes manifests mount (the base's and the demo
    /// overlay's ConfigMap `lrt-config`).
    #[test]
    fn the_kubernetes_configurations_are_valid() {
        let base = deploy_config("deploy/kubernetes/base/config.toml");
        assert!(base.migrate_on_start);
        assert_eq!(base.rules_dir, Path::new("/opt/lrt/rules"));
        let demo = deploy_config("deploy/kubernetes/overlays/demo/config.toml");
        assert!(demo.auth.is_some());
    }

    fn deploy_config(relative: &str) -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(relative);
        let config: Config = Figment::new()
            .merge(Toml::file(&path))
            .extract()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        config
            .check()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        config
    }
}
