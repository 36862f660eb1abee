//! The `pointsman` command line.

mod cli;
mod exit_code;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors
            // print clap's message and exit with the bad-input status.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(exit_code::BAD_INPUT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.verbose());
    match cli.command {
        cli::Command::Run(args) => cli::run(&args),
    }
}

/// Logs go to stderr, so they never mix with the guest's console on
/// stdout. `RUST_LOG` overrides the level that `--verbose` picks.
fn init_logging(verbose: bool) {
    let default = if verbose { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
