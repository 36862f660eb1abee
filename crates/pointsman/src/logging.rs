//! Where Pointsman's own log goes: stderr by default, so it never mixes
//! with the guest's console on stdout, or the file a Firecracker logger
//! configuration names.

use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use vmm::resources::Logger;

/// Logs to stderr. `RUST_LOG` overrides the level that `--verbose` picks.
pub fn init(verbose: bool) {
    let default = if verbose { "debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Logs as a Firecracker logger configuration asks: to `log_path`
/// (appended to, created if missing; a FIFO works too) or stderr, at
/// `level`, for `module` alone if given, with the level and the origin
/// (file and line) of each message shown if asked.
pub fn init_from(logger: &Logger) -> Result<(), String> {
    let directive = logger.filter_directive().map_err(|e| e.to_string())?;
    let filter = EnvFilter::try_new(&directive)
        .map_err(|e| format!("invalid logger module {:?}: {e}", logger.module))?;
    let show_origin = logger.show_log_origin.unwrap_or(false);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_level(logger.show_level.unwrap_or(false))
        .with_file(show_origin)
        .with_line_number(show_origin);
    match &logger.log_path {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log_path {path}: {e}"))?;
            builder.with_writer(Mutex::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
