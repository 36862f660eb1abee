//! Where Pointsman's own log goes: stderr by default, so it never mixes
//! with the guest's console on stdout, or the file a Firecracker logger
//! configuration names.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileTypeExt;
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
            let file = open_log(path).map_err(|e| format!("cannot open log_path {path}: {e}"))?;
            builder.with_writer(Mutex::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
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

    #[test]
    fn a_fifo_opens_without_a_reader() {
        let dir = std::env::temp_dir().join(format!("pointsman-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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
}
