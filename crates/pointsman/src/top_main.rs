//! `pointsman-top`, which `pointsman top` runs: the terminal view of a
//! daemon's guests (the `top` crate). A binary of its own so that the
//! `pointsman` binary, which every VMM runs, carries none of the terminal
//! UI's code: linked in, it grew the binary by 386 KiB and an idle VMM's
//! RSS by 344 KiB (the kernel maps the cached neighbours of every code
//! page a VMM runs, so a VMM's RSS grows with the binary's code).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use manager::serve::DEFAULT_SOCKET;

/// A full-screen view of a `pointsman serve` daemon's guests.
#[derive(Parser, Debug)]
#[command(name = "pointsman top", version)]
struct Args {
    /// The daemon's socket.
    #[arg(long, value_name = "PATH", env = "POINTSMAN_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match top::run(args.socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pointsman top: {e}");
            ExitCode::FAILURE
        }
    }
}
