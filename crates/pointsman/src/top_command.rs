//! `pointsman top`: the `top` crate's full-screen view of a daemon's
//! guests. Only this subcommand reaches that crate, so a VMM (`pointsman
//! run`) never faults its code in.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use manager::serve::DEFAULT_SOCKET;

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The daemon's socket.
    #[arg(long, value_name = "PATH", env = "POINTSMAN_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

pub fn run(args: &TopArgs) -> ExitCode {
    match top::run(args.socket.clone()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pointsman top: {e}");
            ExitCode::FAILURE
        }
    }
}
