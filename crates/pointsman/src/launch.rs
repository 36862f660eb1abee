//! Booting a configured guest and reporting how it ended, shared by
//! `pointsman run` and the `firecracker` name.

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

use api::firecracker::FirecrackerApi;
use api::ServerOptions;
use vmm::{Boot, Controller, LoggerHook, StartOptions, VmResources};

use crate::exit_code;

/// Boots (or restores) the guest and maps how it ended to the exit
/// status, with one line on stderr when it did not end cleanly (and the
/// vCPU registers under `verbose` when the guest failed).
pub fn boot(boot: Boot, options: StartOptions, verbose: bool) -> ExitCode {
    let outcome = vmm::run_boot(boot, options);
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

/// A VMM driven through Firecracker's API.
pub struct ApiLaunch {
    /// The socket the API listens on.
    pub socket: PathBuf,
    /// Largest request body, in bytes.
    pub max_payload: usize,
    /// The instance id `GET /` shows.
    pub id: String,
    /// The guest to boot (or restore) at once; with none, the API
    /// configures it.
    pub boot: Option<Boot>,
    /// The configuration as `GET /vm/config` shows it.
    pub resources: VmResources,
    pub options: StartOptions,
    /// Where metrics go from the start (`--metrics-path`, the config
    /// file's `metrics`).
    pub metrics: Option<PathBuf>,
    /// Changes the log on `PUT /logger`.
    pub logger: Option<LoggerHook>,
    pub verbose: bool,
}

/// Serves Firecracker's API on `launch.socket` and runs the guest it
/// boots or configures; maps how it ended to the exit status.
pub fn serve_api(launch: ApiLaunch) -> ExitCode {
    let server = api::start(
        &launch.socket,
        ServerOptions::default().with_max_payload_bytes(launch.max_payload),
    );
    let (_server, receiver) = match server {
        Ok(started) => started,
        Err(e) => return bad_input(format_args!("--api-sock {}: {e}", launch.socket.display())),
    };
    let mut controller = Controller::new(launch.resources, launch.options, launch.logger);
    if let Some(path) = launch.metrics {
        if let Err(e) = controller.open_metrics(path) {
            return bad_input(e);
        }
    }
    let mut source = FirecrackerApi::new(receiver, launch.id);
    let outcome = vmm::run_controlled(launch.boot, controller, Some(&mut source));
    report(&outcome, launch.verbose)
}
