//! `pointsman top`: runs `pointsman-top` (from beside this binary, else
//! from the PATH) in this process's place. The terminal UI lives in that
//! binary so that this one, which every VMM runs, carries none of its
//! code (see `top_main.rs`).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::Args;
use manager::serve::DEFAULT_SOCKET;

/// The binary with the terminal UI.
const TOP_BINARY: &str = "pointsman-top";

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The daemon's socket.
    #[arg(long, value_name = "PATH", env = "POINTSMAN_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

pub fn run(args: &TopArgs) -> ExitCode {
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(TOP_BINARY))
        .filter(|path| path.exists());
    let program = beside.unwrap_or_else(|| PathBuf::from(TOP_BINARY));
    // exec returns only if it failed.
    let error = Command::new(&program)
        .arg("--socket")
        .arg(&args.socket)
        .exec();
    eprintln!(
        "pointsman top: cannot run {}: {error} (it is built beside pointsman)",
        program.display()
    );
    ExitCode::FAILURE
}
