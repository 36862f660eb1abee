//! Firecracker's resources: the JSON bodies of its API and the sections of
//! its config file, with its field names, defaults and required fields,
//! checked the way Firecracker checks them, and turned into a
//! [`VmConfig`](crate::VmConfig).
//!
//! Each type refuses unknown fields. Where Pointsman lacks a feature that
//! a field asks for, the field is refused with a message that says so,
//! or, when ignoring it changes nothing the guest relies on, accepted
//! and documented in `docs/api.md`.

mod balloon;
mod boot_source;
mod drive;
mod entropy;
mod error;
mod instance;
mod logger;
mod machine_config;
mod metrics;
mod network;
mod rate_limiter;
mod serial;
mod snapshot;
mod vm_resources;
mod vsock;

pub use balloon::{Balloon, BalloonStats, BalloonStatsUpdate, BalloonUpdate};
pub use boot_source::BootSource;
pub use drive::{CacheType, Drive, IoEngine, PartialDrive};
pub use entropy::Entropy;
pub use error::ResourceError;
pub use instance::{
    ActionType, InstanceActionInfo, InstanceInfo, InstanceState, VmState, VmStateTarget,
    DEFAULT_INSTANCE_ID, FIRECRACKER_VERSION,
};
pub use logger::{LogLevel, Logger};
pub use machine_config::{HugePagesConfig, MachineConfig, MachineConfigUpdate, MAX_VCPUS};
pub use metrics::Metrics;
pub use network::{NetworkInterface, PartialNetworkInterface};
pub use rate_limiter::{RateLimiter, TokenBucket};
pub use serial::Serial;
pub use snapshot::{
    MemoryBackend, MemoryBackendType, NetworkOverride, SnapshotCreateParams, SnapshotLoadParams,
    SnapshotOverrides, SnapshotType, VsockOverride,
};
pub use vm_resources::{VmResources, EMBEDDED_KERNEL_PATH};
pub use vsock::Vsock;

use std::path::Path;

/// Longest id Firecracker accepts.
const MAX_ID_LEN: usize = 64;

/// Checks an id the way Firecracker does: 1 to 64 letters, digits or `_`.
pub fn validate_id(field: &'static str, value: &str) -> Result<(), ResourceError> {
    let valid = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ResourceError::InvalidId {
            field,
            value: value.to_owned(),
        })
    }
}

fn validate_path(field: &'static str, path: &str) -> Result<(), ResourceError> {
    if path.is_empty() {
        Err(ResourceError::EmptyPath { field })
    } else {
        Ok(())
    }
}

/// Opens a host file the way the VMM will, so that a request naming a
/// file that is missing or unreadable is refused before anything changes.
fn check_file(field: &'static str, path: &str, writable: bool) -> Result<(), ResourceError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(Path::new(path))
        .map(drop)
        .map_err(|e| ResourceError::File {
            field,
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_letters_digits_and_underscores() {
        for good in ["rootfs", "eth0", "a", "A_1", &"x".repeat(64)] {
            assert!(validate_id("drive_id", good).is_ok(), "{good}");
        }
        for bad in ["", "a-b", "a b", "é", "a/b", &"x".repeat(65)] {
            assert_eq!(
                validate_id("drive_id", bad),
                Err(ResourceError::InvalidId {
                    field: "drive_id",
                    value: bad.to_owned()
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_files_are_named() {
        let e = check_file("path_on_host", "/nonexistent/disk.img", false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot open path_on_host /nonexistent/disk.img:"),
            "{e}"
        );
        assert!(check_file("kernel_image_path", "/proc/self/exe", false).is_ok());
    }
}
