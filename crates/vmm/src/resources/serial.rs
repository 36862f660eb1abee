//! `PUT /serial`: where the guest's serial console output goes, and how
//! fast. Like Firecracker's, it is a request only: its config file has
//! no section for it and `GET /vm/config` does not show it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{validate_path, ResourceError, TokenBucket};
use crate::SerialOutput;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serial {
    /// A file or FIFO for the console output instead of stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_out_path: Option<String>,
    /// Bytes per refill time the guest may write; the rest is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiter: Option<TokenBucket>,
}

impl Serial {
    pub fn validate(&self) -> Result<(), ResourceError> {
        if let Some(path) = &self.serial_out_path {
            validate_path("serial_out_path", path)?;
        }
        if let Some(bucket) = &self.rate_limiter {
            bucket.validate("rate_limiter")?;
        }
        Ok(())
    }

    /// Checks the request and opens its file, so that a path that cannot
    /// be opened is refused now, by name.
    pub fn open(&self) -> Result<SerialOutput, ResourceError> {
        self.validate()?;
        let file = match &self.serial_out_path {
            Some(path) => Some(Arc::new(open_output(path).map_err(|e| {
                ResourceError::File {
                    field: "serial_out_path",
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?)),
            None => None,
        };
        Ok(SerialOutput {
            file,
            limit: self.rate_limiter.as_ref().and_then(TokenBucket::to_config),
        })
    }
}

/// Opens the output as Firecracker does: created if missing, neither
/// truncated nor appended to (the guest writes from its start), and
/// non-blocking, so a FIFO opens without a reader (it is opened for
/// reading too) and a full one drops the guest's bytes rather than
/// stalling its vCPU.
fn open_output(path: &str) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn an_optional_path_and_limit() {
        let s: Serial = serde_json::from_str(r#"{"serial_out_path": "/tmp/out"}"#).unwrap();
        s.validate().unwrap();
        let limited: Serial = serde_json::from_str(
            r#"{"serial_out_path": "/tmp/out",
                "rate_limiter": {"size": 4096, "one_time_burst": 100, "refill_time": 100}}"#,
        )
        .unwrap();
        let bucket = limited.rate_limiter.and_then(|b| b.to_config()).unwrap();
        assert_eq!((bucket.size, bucket.one_time_burst), (4096, 100));
        assert_eq!(
            serde_json::from_str::<Serial>("{}").unwrap(),
            Serial::default()
        );
    }

    #[test]
    fn refusals() {
        let empty: Serial = serde_json::from_str(r#"{"serial_out_path": ""}"#).unwrap();
        assert_eq!(
            empty.open().unwrap_err(),
            ResourceError::EmptyPath {
                field: "serial_out_path"
            }
        );
        for bad in [
            r#"{"path": "/x"}"#,
            r#"{"serial_out_path": 1}"#,
            r#"{"rate_limiter": {"size": 1}}"#,
            r#"{"rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1}}}"#,
        ] {
            assert!(serde_json::from_str::<Serial>(bad).is_err(), "{bad}");
        }
        let slow: Serial =
            serde_json::from_str(r#"{"rate_limiter": {"size": 1, "refill_time": 99999999999999}}"#)
                .unwrap();
        let e = slow.open().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid rate_limiter.refill_time"),
            "{e}"
        );
        let missing = Serial {
            serial_out_path: Some("/nonexistent/dir/serial.out".into()),
            rate_limiter: None,
        };
        let e = missing.open().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot open serial_out_path /nonexistent/dir/serial.out:"),
            "{e}"
        );
    }

    #[test]
    fn the_file_is_created_and_written_from_its_start() {
        let dir = std::env::temp_dir().join(format!("pointsman-serial-res-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        let serial = Serial {
            serial_out_path: Some(path.to_str().unwrap().to_owned()),
            rate_limiter: Some(TokenBucket {
                size: 0,
                one_time_burst: None,
                refill_time: 100,
            }),
        };
        let output = serial.open().unwrap();
        assert!(output.limit.is_none(), "size 0 does not limit");
        output
            .file
            .as_deref()
            .unwrap()
            .write_all(b"old text")
            .unwrap();
        let again = serial.open().unwrap();
        again.file.as_deref().unwrap().write_all(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new text");

        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let through_fifo = Serial {
            serial_out_path: Some(fifo.to_str().unwrap().to_owned()),
            rate_limiter: None,
        };
        let output = through_fifo.open().expect("a FIFO opens without a reader");
        let mut reader = File::open(&fifo).unwrap();
        output.file.as_deref().unwrap().write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
