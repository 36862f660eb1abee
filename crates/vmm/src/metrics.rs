//! Metrics: what the VMM counts, written as one JSON object per line to
//! the file or FIFO a `PUT /metrics` names, on `FlushMetrics` and every
//! [`FLUSH_INTERVAL`], in Firecracker's groups where they apply. Each
//! counter is what the VMM really did since the previous line (as
//! Firecracker's are), kept in process-wide atomics that the code that
//! does the work bumps (one guest per VMM process).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a metrics line is written without being asked.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// A counter of the VMM's own work, reset as each line is written.
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

/// vCPU exits handled by the VMM, by kind (Firecracker's `vcpu` group).
pub static VCPU_EXIT_IO_IN: Counter = Counter::new();
pub static VCPU_EXIT_IO_OUT: Counter = Counter::new();
pub static VCPU_EXIT_MMIO_READ: Counter = Counter::new();
pub static VCPU_EXIT_MMIO_WRITE: Counter = Counter::new();
/// Exits that ended the run with an error.
pub static VCPU_FAILURES: Counter = Counter::new();
/// API requests the VMM served, and those it refused (`api_server`).
pub static API_REQUESTS: Counter = Counter::new();
pub static API_REQUEST_FAILS: Counter = Counter::new();
/// Pauses and resumes carried out (`vmm`).
pub static VM_PAUSES: Counter = Counter::new();
pub static VM_RESUMES: Counter = Counter::new();

/// Where metrics lines go, once a `PUT /metrics` named it.
#[derive(Default)]
pub struct MetricsSink {
    file: Option<File>,
    last: Option<Instant>,
}

impl MetricsSink {
    /// Opens `path` for appending (created if missing). A FIFO is opened
    /// for reading too, so that the open does not wait for the reader.
    pub fn open(&mut self, path: PathBuf) -> Result<(), String> {
        if self.file.is_some() {
            return Err("metrics are already configured".into());
        }
        let is_fifo = std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_fifo());
        let file = OpenOptions::new()
            .read(is_fifo)
            .append(true)
            .create(!is_fifo)
            .open(&path)
            .map_err(|e| format!("cannot open metrics_path {}: {e}", path.display()))?;
        self.file = Some(file);
        self.last = Some(Instant::now());
        Ok(())
    }

    /// Writes a line if one is due ([`FLUSH_INTERVAL`] since the last).
    pub fn flush_if_due(&mut self) {
        if self.last.is_some_and(|t| t.elapsed() >= FLUSH_INTERVAL) {
            if let Err(e) = self.flush() {
                tracing::warn!("{e}");
            }
        }
    }

    /// How long until a line is due, if metrics are on.
    pub fn due_in(&self) -> Option<Duration> {
        self.last
            .map(|t| FLUSH_INTERVAL.saturating_sub(t.elapsed()))
    }

    /// Writes one line now; without a metrics file, does nothing.
    pub fn flush(&mut self) -> Result<(), String> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        self.last = Some(Instant::now());
        let line = line();
        file.write_all(line.as_bytes())
            .map_err(|e| format!("cannot write metrics: {e}"))
    }
}

/// One metrics line, taking every counter.
fn line() -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    format!(
        concat!(
            "{{\"utc_timestamp_ms\":{},",
            "\"api_server\":{{\"requests\":{},\"request_fails\":{}}},",
            "\"vcpu\":{{\"exit_io_in\":{},\"exit_io_out\":{},\"exit_mmio_read\":{},",
            "\"exit_mmio_write\":{},\"failures\":{}}},",
            "\"vmm\":{{\"pauses\":{},\"resumes\":{}}}}}\n"
        ),
        now_ms,
        API_REQUESTS.take(),
        API_REQUEST_FAILS.take(),
        VCPU_EXIT_IO_IN.take(),
        VCPU_EXIT_IO_OUT.take(),
        VCPU_EXIT_MMIO_READ.take(),
        VCPU_EXIT_MMIO_WRITE.take(),
        VCPU_FAILURES.take(),
        VM_PAUSES.take(),
        VM_RESUMES.take(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_json_in_firecrackers_groups() {
        let line: serde_json::Value = serde_json::from_str(&line()).unwrap();
        assert!(line["utc_timestamp_ms"].as_u64().unwrap() > 0);
        for (group, key) in [
            ("api_server", "requests"),
            ("vcpu", "exit_io_out"),
            ("vcpu", "exit_mmio_write"),
            ("vmm", "pauses"),
        ] {
            assert!(line[group][key].is_u64(), "{group}.{key} in {line}");
        }
    }

    #[test]
    fn a_counter_counts_since_it_was_last_taken() {
        let counter = Counter::new();
        counter.inc();
        counter.inc();
        assert_eq!(counter.take(), 2);
        assert_eq!(counter.take(), 0);
    }

    #[test]
    fn a_sink_writes_lines_to_its_file() {
        let path = std::env::temp_dir().join(format!("pointsman-metrics-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut sink = MetricsSink::default();
        sink.flush().unwrap();
        sink.open(path.clone()).unwrap();
        assert!(sink.open(path.clone()).is_err(), "configured twice");
        sink.flush().unwrap();
        sink.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(sink.due_in().unwrap() <= FLUSH_INTERVAL);
        std::fs::remove_file(&path).unwrap();
    }
}
