//! `lrt health [--url URL]`: asks a running `lrt serve` whether it is ready and exits 0 (ready)
//! or 1 (not ready, or no answer). It is the image's `HEALTHCHECK` (the runtime image has no
//! shell and no curl); Kubernetes uses the HTTP probes of `deploy/kubernetes/` instead.

use std::process::ExitCode;
use std::time::Duration;

use super::{CliError, Ctx};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The health endpoint to ask (`/health/live` for liveness only).
    #[arg(long, default_value = "http://127.0.0.1:8080/health/ready")]
    url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    timeout_secs: u64,
}

pub fn run(_ctx: &Ctx, args: Args) -> Result<ExitCode, CliError> {
    let url = reqwest::Url::parse(&args.url)
        .map_err(|e| CliError::BadInput(format!("--url {:?}: {e}", args.url)))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(CliError::BadInput(format!(
            "--url {:?}: an http(s) URL is needed",
            args.url
        )));
    }
    lrt_fhir::client::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::BadInput(format!("cannot start: {e}")))?;
    let answer = runtime.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let response = http.get(url).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Ok::<_, String>((status, body))
    });
    match answer {
        Ok((status, _)) if status.is_success() => {
            println!("ready ({status})");
            Ok(ExitCode::SUCCESS)
        }
        Ok((status, body)) => {
            eprintln!("not ready ({status}): {}", body.trim());
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            eprintln!("no answer from {}: {error}", args.url);
            Ok(ExitCode::FAILURE)
        }
    }
}
