//! Booting a configured guest and reporting how it ended, shared by
//! `pointsman run` and the `firecracker` name.

use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;

use vmm::VmConfig;

use crate::exit_code;

/// Boots `config` and maps how it ended to the exit status, with one
/// line on stderr when it did not end cleanly (and the vCPU registers
/// under `verbose` when the guest failed).
pub fn boot(config: &VmConfig, verbose: bool) -> ExitCode {
    let outcome = vmm::run(config);
    report(&outcome, verbose)
}

/// The exit status for `outcome`, with its error on stderr.
pub fn report(outcome: &vmm::Result<vmm::GuestExit>, verbose: bool) -> ExitCode {
    if let Err(e) = outcome {
        eprintln!("pointsman: {e}");
        if verbose {
            if let Some(registers) = e.guest_registers() {
                eprintln!("{registers}");
            }
        }
    }
    ExitCode::from(exit_code::for_outcome(outcome))
}

/// Refuses bad input before anything starts: one line, status 2.
pub fn bad_input(problem: impl Display) -> ExitCode {
    eprintln!("pointsman: {problem}");
    ExitCode::from(exit_code::BAD_INPUT)
}

/// What an API socket asks for until the API server is wired in.
pub fn api_unavailable(api_sock: &Path) -> ExitCode {
    bad_input(format_args!(
        "the API (on {}) is not available yet: give a --config-file to boot a guest without it",
        api_sock.display()
    ))
}
