//! `lrt`: the Lung Rescue Team decision-support command.
//!
//! Every command prints JSON on stdout and messages on stderr; the exit code is
//! 0 = ok, 1 = evaluation or tests failed, 2 = bad input (a file, a field, a rule).
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
