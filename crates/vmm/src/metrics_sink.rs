//! Metrics lines: what the VMM and its devices counted (the `metrics`
//! crate), written as one JSON object per line to the file or FIFO a
//! `PUT /metrics` names, on `FlushMetrics` and every [`FLUSH_INTERVAL`],
//! in Firecracker's groups. Each counter is what was really done since
//! the previous line, as Firecracker's are.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics::{Group, Registry};
use serde_json::{Map, Value};

/// How often a metrics line is written without being asked.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);

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
        let line = line(metrics::registry());
        file.write_all(line.as_bytes())
            .map_err(|e| format!("cannot write metrics: {e}"))
    }
}

/// A group as a JSON object.
fn object(counts: Vec<(&'static str, u64)>) -> Value {
    Value::Object(
        counts
            .into_iter()
            .map(|(name, count)| (name.to_owned(), Value::from(count)))
            .collect(),
    )
}

/// One metrics line, taking every counter: the VMM's own groups, then
/// `devices`'.
fn line(devices: &Registry) -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut line = Map::new();
    line.insert("utc_timestamp_ms".into(), Value::from(now_ms));
    line.insert("api_server".into(), object(metrics::API_SERVER.take()));
    for (name, group) in [
        ("get_api_requests", metrics::GET_API_REQUESTS.take()),
        ("put_api_requests", metrics::PUT_API_REQUESTS.take()),
        ("patch_api_requests", metrics::PATCH_API_REQUESTS.take()),
    ] {
        line.insert(name.into(), object(group));
    }
    line.insert("vcpu".into(), object(metrics::VCPU.take()));
    line.insert("vmm".into(), object(metrics::VMM.take()));
    line.insert("latencies_us".into(), object(metrics::LATENCIES.values()));
    for (name, counts) in devices.take() {
        line.insert(name, object(counts));
    }
    let mut text = Value::Object(line).to_string();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_json_in_firecrackers_groups() {
        let line: Value = serde_json::from_str(&line(&Registry::default())).unwrap();
        assert!(line["utc_timestamp_ms"].as_u64().unwrap() > 0);
        for (group, key) in [
            ("api_server", "requests"),
            ("get_api_requests", "instance_info_count"),
            ("put_api_requests", "actions_fails"),
            ("patch_api_requests", "drive_count"),
            ("vcpu", "exit_io_out"),
            ("vcpu", "exit_mmio_write"),
            ("vmm", "pauses"),
            ("latencies_us", "pause_vm"),
            ("latencies_us", "resume_vm"),
            ("block", "read_bytes"),
            ("net", "tx_bytes_count"),
            ("vsock", "conns_added"),
            ("balloon", "inflate_count"),
            ("entropy", "entropy_bytes"),
            ("uart", "write_count"),
        ] {
            assert!(line[group][key].is_u64(), "{group}.{key} in {line}");
        }
    }

    #[test]
    fn a_line_has_each_devices_group_and_their_sum_counted_since_the_last() {
        let devices = Registry::default();
        devices.block("root").read_bytes.add(4096);
        devices.block("scratch").read_bytes.add(512);
        devices.net("eth0").tx_packets_count.inc();
        devices.uart().write_count.add(3);
        let first: Value = serde_json::from_str(&line(&devices)).unwrap();
        assert_eq!(first["block_root"]["read_bytes"], 4096);
        assert_eq!(first["block_scratch"]["read_bytes"], 512);
        assert_eq!(first["block"]["read_bytes"], 4608);
        assert_eq!(first["net_eth0"]["tx_packets_count"], 1);
        assert_eq!(first["net"]["tx_packets_count"], 1);
        assert_eq!(first["uart"]["write_count"], 3);

        let second: Value = serde_json::from_str(&line(&devices)).unwrap();
        assert_eq!(second["block_root"]["read_bytes"], 0);
        assert_eq!(second["block"]["read_bytes"], 0);
        assert_eq!(second["uart"]["write_count"], 0);
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
