//! `lrt dev`: development and test helpers. `lrt dev token` mints a CDS Hooks JWT (ES384, a
//! fresh `jti`) with a development key, such as the one `lrt demo` writes, so that a pasted curl
//! gets a token of its own. A production EHR signs its own tokens: nothing here is used by
//! `lrt serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use lrt_auth::dev::DevSigner;
use serde_json::Value;

use super::{CliError, Ctx, write_stdout};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a signed JWT for one CDS Hooks or API call (one use: each has a fresh `jti`).
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The private key as a JWK file (EC P-384 with `d` and `kid`; `lrt demo` writes one).
    #[arg(long)]
    key: PathBuf,
    /// The audience: the URL called (e.g. http://127.0.0.1:8080/cds-services/lrt-patient-view,
    /// or http://127.0.0.1:8080/api/v1 for the API).
    #[arg(long)]
    aud: String,
    /// The issuer (`iss`); it must be a trusted issuer of the service's `[auth]`.
    #[arg(long, default_value = "urn:lrt:demo-ehr")]
    iss: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 300)]
    lifetime_secs: i64,
    /// A `tenant` claim.
    #[arg(long)]
    tenant: Option<String>,
}

pub fn run(_ctx: &Ctx, cmd: Command) -> Result<ExitCode, CliError> {
    match cmd {
        Command::Token(args) => token(args),
    }
}

fn token(args: TokenArgs) -> Result<ExitCode, CliError> {
    let bad = |what: String| CliError::BadInput(format!("{}: {what}", args.key.display()));
    let text = std::fs::read_to_string(&args.key).map_err(|e| bad(e.to_string()))?;
    let jwk: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let signer = DevSigner::from_private_jwk(&jwk, &args.iss).map_err(bad)?;
    if !(1..=86_400).contains(&args.lifetime_secs) {
        return Err(CliError::BadInput(
            "--lifetime-secs: between 1 and 86400".into(),
        ));
    }
    if url::Url::parse(&args.aud).is_err() {
        return Err(CliError::BadInput(format!(
            "--aud {:?}: not a URL (the URL the token is for)",
            args.aud
        )));
    }
    let mut claims = signer.claims(&args.aud, args.lifetime_secs);
    if let Some(tenant) = args.tenant {
        claims["tenant"] = Value::String(tenant);
    }
    write_stdout(&(signer.sign(&signer.header(), &claims) + "\n"))?;
    Ok(ExitCode::SUCCESS)
}
