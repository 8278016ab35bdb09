//! `lrt serve` (the CDS Hooks service), `lrt check-config` (every check `serve` makes, without
//! starting) and `lrt migrate` (apply, or with `--dry-run` list, the database migrations).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lrt_server::service::{self, App, AppState, Config, store, telemetry};
use sqlx::migrate::Migrate;

use super::{CliError, Ctx, write_stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (TOML); `LRT_*` environment variables and `DATABASE_URL` override it.
    #[arg(long, env = "LRT_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    config: Args,
    /// List the migrations that would be applied (and those already applied); change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// The configuration file and environment, with `--rules-dir` (when given) in place of the
/// configuration's `rules_dir`, checked as `lrt serve` needs it.
fn load(ctx: &Ctx, args: &Args) -> Result<Config, CliError> {
    let config = load_unchecked(ctx, args)?;
    config
        .check()
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    Ok(config)
}

/// The configuration as `lrt migrate` and `lrt purge` need it: the database and `[retention]`.
fn load_unchecked(ctx: &Ctx, args: &Args) -> Result<Config, CliError> {
    read_config(ctx, args.config.as_deref())
}

/// The configuration as the commands that need only the database, `rules_dir` and `[retention]`
/// read it (`lrt migrate`, `lrt purge`, `lrt replay`): `--rules-dir` replaces `rules_dir`.
pub(super) fn read_config(ctx: &Ctx, file: Option<&Path>) -> Result<Config, CliError> {
    let mut config = Config::read(file).map_err(|e| CliError::BadInput(e.to_string()))?;
    if let Some(dir) = &ctx.rules_dir_override {
        config.rules_dir = dir.clone();
    }
    config
        .retention
        .check()
        .map_err(|e| CliError::BadInput(format!("configuration: {e}")))?;
    Ok(config)
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::BadInput(format!("cannot start the runtime: {e}")))
}

pub fn serve(ctx: &Ctx, args: Args) -> Result<ExitCode, CliError> {
    let config = load(ctx, &args)?;
    let _telemetry = telemetry::init(config.log_format);
    runtime()?.block_on(async move {
        // Every check, then the migrations, then the port: a bad configuration changes nothing,
        // and the port answers (probes included) only once the service can serve.
        let app = App::build(config)
            .await
            .map_err(|e| CliError::BadInput(e.to_string()))?;
        let listener = service::listen(&app.state.config)
            .await
            .map_err(|e| CliError::BadInput(e.to_string()))?;
        let addr = listener.local_addr().map_err(CliError::Output)?;
        tracing::info!(
            %addr,
            version = env!("CARGO_PKG_VERSION"),
            ruleset = %app.state.rules.label(),
            shadow = ?app.state.shadow.as_ref().map(|s| s.label()),
            "lrt serve listening"
        );
        app.serve(listener, service::shutdown_signal())
            .await
            .map_err(CliError::Output)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `lrt check-config`: the checks of `lrt serve` (configuration, rule sets, key and secret
/// files, allow list, card texts, paging channels) without touching the database or a port.
pub fn check_config(ctx: &Ctx, args: Args) -> Result<ExitCode, CliError> {
    let config = load(ctx, &args)?;
    let state = runtime()?.block_on(async move {
        AppState::checked(config).map_err(|e| CliError::BadInput(e.to_string()))
    })?;
    let c = &state.config;
    let summary = serde_json::json!({
        "status": "ok",
        "listen": c.listen.to_string(),
        "public_base_url": c.public_base_url,
        "database": if c.database_url.is_some() { "configured (not contacted)" } else { "missing" },
        "migrate_on_start": c.migrate_on_start,
        "rules_dir": c.rules_dir.display().to_string(),
        "ruleset": {"active": state.rules.label(), "sha256": state.rules.sha256,
                    "shadow": state.shadow.as_ref().map(|s| s.label())},
        "auth": match (&c.auth, c.insecure_no_auth) {
            (_, true) => serde_json::json!("OFF (insecure_no_auth, loopback only)"),
            (Some(a), false) => serde_json::json!({
                "issuers": a.issuers.iter().map(|i| i.iss.as_str()).collect::<Vec<_>>(),
            }),
            (None, false) => serde_json::json!("missing"),
        },
        "fhir_allow": c.fhir_allow,
        "ehr": c.ehr.fhir_base,
        "paging": state.pager.as_ref().map(|p| p.channels.names()),
    });
    let text = if ctx.compact {
        serde_json::to_string(&summary)
    } else {
        serde_json::to_string_pretty(&summary)
    };
    write_stdout(&(text.unwrap_or_default() + "\n"))?;
    eprintln!("configuration ok: every check of `lrt serve` passed (database not contacted)");
    Ok(ExitCode::SUCCESS)
}

/// `lrt purge`: the retention purge of `[retention]`, once (for a scheduled Job; `lrt serve`
/// also runs it every hour). Prints what it did.
pub fn purge(ctx: &Ctx, args: Args) -> Result<ExitCode, CliError> {
    let config = load_unchecked(ctx, &args)?;
    if !config.retention.enabled() {
        return Err(CliError::BadInput(
            "no retention configured: set [retention] patient_data_days and/or row_days".into(),
        ));
    }
    let url = config.database_url.clone().ok_or_else(|| {
        CliError::BadInput("no database: set DATABASE_URL or database_url".into())
    })?;
    runtime()?.block_on(async move {
        let pool = store::connect_lazy(&url, 2).map_err(|e| CliError::BadInput(e.to_string()))?;
        let done = service::retention::purge(&pool, &config.retention)
            .await
            .map_err(|e| CliError::BadInput(format!("database: {e}")))?;
        match done {
            Some(purged) => {
                let text = serde_json::to_string(&purged).unwrap_or_default();
                write_stdout(&(text + "\n"))?;
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("another process is running the retention purge; nothing done");
                Ok(ExitCode::from(1))
            }
        }
    })
}

pub fn migrate(ctx: &Ctx, args: MigrateArgs) -> Result<ExitCode, CliError> {
    let config = load_unchecked(ctx, &args.config)?;
    let url = config.database_url.ok_or_else(|| {
        CliError::BadInput("no database: set DATABASE_URL or database_url".into())
    })?;
    runtime()?.block_on(async move {
        let pool = store::connect_lazy(&url, 2).map_err(|e| CliError::BadInput(e.to_string()))?;
        if args.dry_run {
            let plan = pending(&pool).await?;
            write_stdout(&(plan.join("\n") + "\n"))?;
            eprintln!("dry run: nothing applied");
            return Ok(ExitCode::SUCCESS);
        }
        store::MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| CliError::BadInput(format!("migrations: {e}")))?;
        eprintln!("migrations applied");
        Ok(ExitCode::SUCCESS)
    })
}

/// One line per migration of this binary: `applied` or `pending`, its version and file name;
/// a migration applied with other contents (changed after it ran) is refused, as `migrate` would.
async fn pending(pool: &sqlx::PgPool) -> Result<Vec<String>, CliError> {
    let db = |e: sqlx::Error| CliError::BadInput(format!("database: {e}"));
    let mut conn = pool.acquire().await.map_err(db)?;
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    let applied = if exists.is_some() {
        conn.list_applied_migrations()
            .await
            .map_err(|e| CliError::BadInput(format!("migrations: {e}")))?
    } else {
        Vec::new()
    };
    let mut lines = Vec::new();
    for m in store::MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
    {
        let state = match applied.iter().find(|a| a.version == m.version) {
            Some(a) if a.checksum != m.checksum => {
                return Err(CliError::BadInput(format!(
                    "migration {} ({}) was applied with other contents",
                    m.version, m.description
                )));
            }
            Some(_) => "applied",
            None => "pending",
        };
        lines.push(format!("{state:<8} {} {}", m.version, m.description));
    }
    Ok(lines)
}
