//! `lrt validate --adjudications FILE.csv`: silent-mode validation of the system's calls against
//! the Lung Rescue Team's adjudications (the method is documented in
//! [`lrt_server::service::quality::validation`]). Reads the file first (a bad value exits 2
//! naming the file, line and column, before any connection), then the calls from the database of
//! the configuration (`--config`, `DATABASE_URL`) or of `--database-url`: the stored active
//! evaluations of every tenant, or one replay run's outcomes (`--run`). Prints a text report,
//! or with `--json` the same JSON as `POST /api/v1/quality/validation`.

use std::path::PathBuf;
use std::process::ExitCode;

use lrt_server::service::auth::Tenancy;
use lrt_server::service::quality::validation::{self, LookBack, load};
use lrt_server::service::{Config, store};

use super::{CliError, Ctx, write_stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The adjudication file: CSV with a header `patient,time,category,consult_warranted`
    /// (and an optional `note`), one row per patient and time the LRT judged.
    #[arg(long, value_name = "FILE.csv")]
    adjudications: PathBuf,
    /// Configuration file (TOML) naming the database; `DATABASE_URL` overrides it.
    #[arg(long, env = "LRT_CONFIG")]
    config: Option<PathBuf>,
    /// The database URL (instead of the configuration's).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Compare the outcomes of this replay run (`lrt replay`) instead of the stored evaluations.
    #[arg(long, value_name = "RUN_ID")]
    run: Option<String>,
    /// The look-back window before each adjudicated time: `90m`, `24h`, `2d` (1 minute to 30
    /// days).
    #[arg(long, default_value = "24h")]
    window: String,
    /// Print the result as JSON (as the API answers it) instead of the text report.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<ExitCode, CliError> {
    let file = args.adjudications.display().to_string();
    let bytes = std::fs::read(&args.adjudications)
        .map_err(|e| CliError::BadInput(format!("{file}: cannot read: {e}")))?;
    let adjudications = validation::adjudication::from_csv(&bytes)
        .map_err(|e| CliError::BadInput(format!("{file}: {e}")))?;
    let window =
        LookBack::parse(&args.window).map_err(|m| CliError::BadInput(format!("--window: {m}")))?;
    let origin = match args.run.as_deref() {
        None => load::Origin::Stored,
        Some(text) => load::Origin::Replay(load::parse_run_id(text).ok_or_else(|| {
            CliError::BadInput(format!("--run: {text:?} is not a replay run id (a UUID)"))
        })?),
    };
    let url = match args.database_url {
        Some(url) => url,
        None => Config::read(args.config.as_deref())
            .map_err(|e| CliError::BadInput(e.to_string()))?
            .database_url
            .ok_or_else(|| {
                CliError::BadInput(
                    "no database: give --database-url, set DATABASE_URL or database_url".into(),
                )
            })?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::BadInput(format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(async {
        let pool = store::connect_lazy(&url, 1).map_err(|e| CliError::BadInput(e.to_string()))?;
        let loaded = load::calls(&pool, &adjudications, window, origin, &Tenancy::All).await;
        pool.close().await;
        let (source, calls) = loaded.map_err(|e| CliError::BadInput(e.to_string()))?;
        Ok::<_, CliError>(validation::validate(&adjudications, &calls, window, source))
    })?;
    if args.json {
        let value = serde_json::to_value(&result)
            .map_err(|e| CliError::BadInput(format!("cannot write the result: {e}")))?;
        ctx.print(&value)?;
    } else {
        write_stdout(&validation::report::text(&result))?;
    }
    Ok(ExitCode::SUCCESS)
}
