//! Where the guest's serial console output goes: the VMM's stdout, or
//! the file `PUT /serial` names, with the byte limit it may set.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;

use metrics::UartMetrics;
use virtio::rate_limiter::{TokenBucket, TokenBucketConfig};

use crate::{Error, Result};

/// The host side of COM1, as `PUT /serial` sets it.
#[derive(Clone, Debug, Default)]
pub struct SerialOutput {
    /// The file or FIFO the guest writes to, opened when the request came
    /// so that a bad path is refused then; `None` for stdout. As in
    /// Firecracker, a guest whose output goes to a file gets no input.
    pub file: Option<Arc<File>>,
    /// Bytes the guest may write per refill time; what it writes beyond
    /// is dropped, as in Firecracker.
    pub limit: Option<TokenBucketConfig>,
}

impl SerialOutput {
    /// True when the console is the VMM's stdin and stdout.
    pub fn is_terminal(&self) -> bool {
        self.file.is_none()
    }

    /// A writer for one machine's COM1. Each gets a descriptor of its own
    /// on the same open file, so a guest restarted in place writes on
    /// where the last one stopped; the limit starts full. What the limit
    /// drops is counted in `metrics`.
    pub(crate) fn writer(&self, metrics: Arc<UartMetrics>) -> Result<SerialWriter> {
        let stdout = std::io::stdout();
        let (file, what) = match &self.file {
            Some(file) => (file.as_fd(), "duplicate the serial_out_path file"),
            // An unbuffered handle of its own, so each guest byte reaches
            // the terminal at once, prompts included.
            None => (stdout.as_fd(), "duplicate stdout for the serial console"),
        };
        let out = file
            .try_clone_to_owned()
            .map(File::from)
            .map_err(|source| Error::Host { what, source })?;
        Ok(SerialWriter::new(out, self.limit.clone(), metrics))
    }
}

/// COM1's output: writes through to `W` what the limit lets through.
pub(crate) struct SerialWriter<W: Write = File> {
    out: W,
    limit: Option<TokenBucket>,
    metrics: Arc<UartMetrics>,
}

impl<W: Write> SerialWriter<W> {
    pub(crate) fn new(out: W, limit: Option<TokenBucketConfig>, metrics: Arc<UartMetrics>) -> Self {
        SerialWriter {
            out,
            limit: limit.map(TokenBucket::new),
            metrics,
        }
    }
}

impl<W: Write> Write for SerialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if let Some(limit) = self.limit.as_mut() {
            if !limit.take(len) {
                // Reported as written: the guest's UART has no way to
                // hear of a loss, and must not retry.
                self.metrics.rate_limiter_dropped_bytes.add(len);
                return Ok(buf.len());
            }
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn output_beyond_the_limit_is_dropped() {
        let limit = TokenBucketConfig {
            size: 4,
            refill: Duration::from_secs(3600),
            one_time_burst: 2,
        };
        let metrics = Arc::new(UartMetrics::default());
        let mut writer = SerialWriter::new(Vec::new(), Some(limit), metrics.clone());
        for byte in b"0123456789" {
            // One byte at a time, as the UART writes.
            assert_eq!(writer.write(&[*byte]).unwrap(), 1);
        }
        assert_eq!(writer.out, b"012345", "the burst, then the bucket");
        assert_eq!(metrics.rate_limiter_dropped_bytes.get(), 4);
    }

    #[test]
    fn without_a_limit_everything_passes() {
        let mut writer = SerialWriter::new(Vec::new(), None, Arc::default());
        writer.write_all(&[b'x'; 10_000]).unwrap();
        assert_eq!(writer.out.len(), 10_000);
    }

    #[test]
    fn a_file_is_shared_by_every_writer() {
        let path = std::env::temp_dir().join(format!("pointsman-serial-{}", std::process::id()));
        let output = SerialOutput {
            file: Some(Arc::new(File::create(&path).unwrap())),
            limit: None,
        };
        assert!(!output.is_terminal());
        let writer = || output.writer(Arc::default()).unwrap();
        writer().write_all(b"first ").unwrap();
        writer().write_all(b"second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first second");
        std::fs::remove_file(&path).unwrap();
        assert!(SerialOutput::default().is_terminal());
    }
}
