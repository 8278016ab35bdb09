//! `lrt serve` (the CDS Hooks service) and `lrt migrate` (apply the database migrations).

use std::path::PathBuf;
use std::process::ExitCode;

use lrt_server::service::{self, App, Config, store, telemetry};

use super::CliError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (TOML); `LRT_*` environment variables and `DATABASE_URL` override it.
    #[arg(long, env = "LRT_CONFIG")]
    config: Option<PathBuf>,
}

fn load(args: &Args) -> Result<Config, CliError> {
    Config::load(args.config.as_deref()).map_err(|e| CliError::BadInput(e.to_string()))
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::BadInput(format!("cannot start the runtime: {e}")))
}

pub fn serve(args: Args) -> Result<ExitCode, CliError> {
    let config = load(&args)?;
    let _telemetry = telemetry::init(config.log_format);
    runtime()?.block_on(async move {
        let listener = service::listen(&config)
            .await
            .map_err(|e| CliError::BadInput(e.to_string()))?;
        let addr = listener.local_addr().map_err(CliError::Output)?;
        let app = App::build(config)
            .await
            .map_err(|e| CliError::BadInput(e.to_string()))?;
        tracing::info!(
            %addr,
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

pub fn migrate(args: Args) -> Result<ExitCode, CliError> {
    let config = load(&args)?;
    let url = config.database_url.ok_or_else(|| {
        CliError::BadInput("no database: set DATABASE_URL or database_url".into())
    })?;
    runtime()?.block_on(async move {
        let pool = store::connect_lazy(&url, 2).map_err(|e| CliError::BadInput(e.to_string()))?;
        store::MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| CliError::BadInput(format!("migrations: {e}")))?;
        eprintln!("migrations applied");
        Ok(ExitCode::SUCCESS)
    })
}
