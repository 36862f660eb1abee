//! Where Pointsman's own log goes: stderr by default, so it never mixes
//! with the guest's console on stdout, or the file a Firecracker logger
//! configuration names.
//!
//! The log is set up once per process with its filter and its output
//! behind `tracing_subscriber::reload` handles, so that each later logger
//! configuration (a config file's `logger` after the flags, then every
//! `PUT /logger` before the start) changes it as Firecracker's does.
//!
//! The filter is `Targets` (`level` or `target=level` directives), not
//! `EnvFilter`: the latter's span and field matching brings a regex engine
//! that is compiled at start-up, and whose code and tables cost the idle
//! VMM about a quarter of a MiB of RSS for nothing the VMM uses.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;

use tracing::{Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{DefaultFields, Format};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::{fmt, reload, Registry};
use vmm::resources::Logger;

type Filtered = Layered<reload::Layer<Targets, Registry>, Registry>;
type Output = fmt::Layer<Filtered, DefaultFields, Format, BoxMakeWriter>;

/// Where the log lines go.
#[derive(Clone)]
enum Target {
    Stderr,
    File(Arc<File>),
}

impl Target {
    fn writer(&self) -> BoxMakeWriter {
        match self {
            Target::Stderr => BoxMakeWriter::new(std::io::stderr),
            Target::File(file) => BoxMakeWriter::new(file.clone()),
        }
    }
}

/// The process's log, ready to be configured again.
pub struct Log {
    filter: reload::Handle<Targets, Registry>,
    output: reload::Handle<Output, Filtered>,
    /// The logger as configured so far, which the next update changes.
    logger: Logger,
    /// Where lines go now: an update without `log_path` keeps it.
    target: Target,
}

/// Logs to stderr. `RUST_LOG` (`level` or `target=level` directives,
/// comma-separated) overrides the level that `--verbose` picks.
pub fn init(verbose: bool) -> Log {
    init_at(if verbose { Level::DEBUG } else { Level::WARN })
}

/// Logs to stderr at `default` and above, unless `RUST_LOG` says otherwise
/// (`pointsman serve` logs at INFO: what happens to its guests).
pub fn init_at(default: Level) -> Log {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(default));
    install(filter)
}

fn warnings() -> Targets {
    Targets::new().with_default(Level::WARN)
}

/// Logs as a Firecracker logger configuration (the `firecracker` flags)
/// asks: see [`Log::update`].
pub fn init_from(logger: &Logger) -> Result<Log, String> {
    let mut log = install(warnings());
    log.update(logger)?;
    Ok(log)
}

fn install(filter: Targets) -> Log {
    let (subscriber, log) = build(filter);
    // Only the first log set up in a process takes: there is one.
    let _ = tracing::subscriber::set_global_default(subscriber);
    log
}

/// The subscriber and the log that reconfigures it.
fn build(filter: Targets) -> (impl Subscriber + Send + Sync, Log) {
    let target = Target::Stderr;
    let (filter, filter_handle) = reload::Layer::new(filter);
    let (output, output_handle) = reload::Layer::new(output_layer(&target, false, false));
    let subscriber = Registry::default().with(filter).with(output);
    let log = Log {
        filter: filter_handle,
        output: output_handle,
        logger: Logger::default(),
        target,
    };
    (subscriber, log)
}

fn output_layer(target: &Target, show_level: bool, show_origin: bool) -> Output {
    fmt::layer()
        .with_target(false)
        .with_level(show_level)
        .with_file(show_origin)
        .with_line_number(show_origin)
        .with_writer(target.writer())
}

impl Log {
    /// Applies a logger configuration over the current one, as
    /// Firecracker does ([`Logger::updated_by`]): to `log_path` (appended
    /// to, created if missing; a FIFO works too) or where the log went
    /// before, at `level`, for `module` alone if given, with the level and
    /// the origin (file and line) of each message shown if asked. A
    /// refusal (a file that cannot be opened, a bad module) changes
    /// nothing.
    pub fn update(&mut self, update: &Logger) -> Result<(), String> {
        let logger = self.logger.updated_by(update);
        let directive = logger.filter_directive().map_err(|e| e.to_string())?;
        let filter: Targets = directive
            .parse()
            .map_err(|e| format!("invalid logger module {:?}: {e}", logger.module))?;
        let target = match &update.log_path {
            Some(path) => Target::File(Arc::new(
                open_log(path).map_err(|e| format!("cannot open log_path {path}: {e}"))?,
            )),
            None => self.target.clone(),
        };
        let show_origin = logger.show_log_origin.unwrap_or(false);
        let output = output_layer(&target, logger.show_level.unwrap_or(false), show_origin);
        let gone = |e: reload::Error| format!("cannot reconfigure the log: {e}");
        self.output.reload(output).map_err(gone)?;
        self.filter.reload(filter).map_err(gone)?;
        self.logger = logger;
        self.target = target;
        Ok(())
    }

    /// This log as the controller's `PUT /logger` hook.
    pub fn into_hook(mut self) -> vmm::LoggerHook {
        Box::new(move |logger| self.update(logger))
    }
}

/// Opens a log file for appending, creating it if missing. A FIFO is
/// opened for reading too: a write-only open would block until the tool
/// that reads the log opens its end, and with both ends open it never
/// does.
fn open_log(path: &str) -> std::io::Result<File> {
    let is_fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
    OpenOptions::new()
        .read(is_fifo)
        .append(true)
        .create(!is_fifo)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pointsman-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn text(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    fn to(path: &Path) -> Logger {
        Logger {
            log_path: Some(path.to_str().unwrap().to_owned()),
            ..Logger::default()
        }
    }

    #[test]
    fn a_fifo_opens_without_a_reader() {
        let dir = scratch("log");
        let fifo = dir.join("log.fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let mut log = open_log(fifo.to_str().unwrap()).unwrap();
        log.write_all(b"line\n").unwrap();
        let mut reader = File::open(&fifo).unwrap();
        let mut got = [0u8; 5];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"line\n");
        let file = dir.join("log.txt");
        open_log(file.to_str().unwrap())
            .unwrap()
            .write_all(b"a")
            .unwrap();
        open_log(file.to_str().unwrap())
            .unwrap()
            .write_all(b"b")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "ab", "appended");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_update_changes_the_running_log() {
        let dir = scratch("log-reload");
        let (first, second) = (dir.join("first.log"), dir.join("second.log"));
        let (subscriber, mut log) = build(warnings());
        tracing::subscriber::with_default(subscriber, || {
            log.update(&to(&first)).unwrap();
            tracing::info!("one");
            log.update(&to(&second)).unwrap();
            tracing::info!("two");
            // No log_path: the same file; no level: Info again.
            log.update(&Logger {
                level: Some("Error".into()),
                show_level: Some(true),
                ..Logger::default()
            })
            .unwrap();
            tracing::warn!("three");
            tracing::error!("four");
            let refused = log.update(&to(&dir.join("missing/x.log")));
            assert!(refused.unwrap_err().contains("missing/x.log"));
            tracing::error!("five");
            log.update(&Logger::default()).unwrap();
            tracing::info!("six");
        });
        assert!(text(&first).contains("one"), "{}", text(&first));
        assert!(!text(&first).contains("two"), "{}", text(&first));
        let later = text(&second);
        assert!(later.contains("two") && !later.contains("three"), "{later}");
        assert!(later.contains("ERROR four"), "the level is shown: {later}");
        assert!(later.contains("five"), "a refusal changes nothing: {later}");
        assert!(later.contains("INFO six"), "{later}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
