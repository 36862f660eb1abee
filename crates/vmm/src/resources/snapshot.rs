//! `PUT /snapshot/create` and `PUT /snapshot/load`: Firecracker's bodies.

use serde::{Deserialize, Serialize};

use super::ResourceError;

/// What kind of snapshot to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotType {
    #[default]
    Full,
    /// Only the pages written since the last snapshot.
    Diff,
}

/// `PUT /snapshot/create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCreateParams {
    pub snapshot_path: String,
    pub mem_file_path: String,
    #[serde(default)]
    pub snapshot_type: SnapshotType,
}

impl SnapshotCreateParams {
    pub fn validate(&self) -> Result<(), ResourceError> {
        non_empty("snapshot_path", &self.snapshot_path)?;
        non_empty("mem_file_path", &self.mem_file_path)
    }
}

/// Where a restored guest's memory comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemoryBackendType {
    /// The memory file, mapped private.
    File,
    /// A page-fault handler process through userfaultfd.
    Uffd,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryBackend {
    pub backend_type: MemoryBackendType,
    pub backend_path: String,
}

/// A NIC's new TAP in the restored guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkOverride {
    pub iface_id: String,
    pub host_dev_name: String,
}

/// The vsock device's new socket in the restored guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsockOverride {
    pub uds_path: String,
}

/// `PUT /snapshot/load`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotLoadParams {
    pub snapshot_path: String,
    /// Deprecated by Firecracker for `mem_backend`; one of the two.
    #[serde(default)]
    pub mem_file_path: Option<String>,
    #[serde(default)]
    pub mem_backend: Option<MemoryBackend>,
    /// Deprecated by Firecracker for `track_dirty_pages`.
    #[serde(default)]
    pub enable_diff_snapshots: Option<bool>,
    #[serde(default)]
    pub track_dirty_pages: Option<bool>,
    #[serde(default)]
    pub resume_vm: Option<bool>,
    #[serde(default)]
    pub network_overrides: Vec<NetworkOverride>,
    #[serde(default)]
    pub vsock_override: Option<VsockOverride>,
    #[serde(default)]
    pub clock_realtime: Option<bool>,
    #[serde(default)]
    pub huge_pages: Option<String>,
}

impl SnapshotLoadParams {
    /// The memory file, from whichever of the two fields names it, after
    /// checking the request as Firecracker does.
    pub fn memory_file(&self) -> Result<&str, ResourceError> {
        non_empty("snapshot_path", &self.snapshot_path)?;
        let path = match (&self.mem_file_path, &self.mem_backend) {
            (Some(_), Some(_)) => {
                return Err(ResourceError::Conflict(
                    "mem_file_path and mem_backend cannot both be given",
                ))
            }
            (None, None) => {
                return Err(ResourceError::Conflict(
                    "one of mem_file_path or mem_backend is needed",
                ))
            }
            (Some(path), None) => path,
            (None, Some(backend)) => match backend.backend_type {
                MemoryBackendType::File => &backend.backend_path,
                MemoryBackendType::Uffd => {
                    return Err(ResourceError::Unsupported(
                        "mem_backend \"Uffd\" (a page-fault handler process): use \"File\"",
                    ))
                }
            },
        };
        non_empty("mem_backend.backend_path", path)?;
        if self.clock_realtime == Some(true) {
            return Err(ResourceError::Unsupported(
                "clock_realtime (the guest's clock goes on from the snapshot)",
            ));
        }
        if self
            .huge_pages
            .as_deref()
            .is_some_and(|h| h != "Snapshot" && h != "None")
        {
            return Err(ResourceError::Unsupported(
                "huge_pages other than \"Snapshot\" or \"None\" on a snapshot load",
            ));
        }
        if !self.network_overrides.is_empty() || self.vsock_override.is_some() {
            return Err(ResourceError::Unsupported(
                "network_overrides and vsock_override (snapshots of guests with network interfaces or vsock are not supported yet)",
            ));
        }
        Ok(path)
    }

    pub fn resume(&self) -> bool {
        self.resume_vm.unwrap_or(false)
    }

    /// Whether KVM logs the restored guest's writes (for Diff snapshots):
    /// `track_dirty_pages`, or its deprecated name `enable_diff_snapshots`.
    pub fn track_dirty_pages(&self) -> bool {
        self.track_dirty_pages
            .or(self.enable_diff_snapshots)
            .unwrap_or(false)
    }
}

fn non_empty(field: &'static str, path: &str) -> Result<(), ResourceError> {
    if path.is_empty() {
        return Err(ResourceError::EmptyPath { field });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> SnapshotLoadParams {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn create_defaults_to_full_and_takes_diff() {
        let p: SnapshotCreateParams =
            serde_json::from_str(r#"{"snapshot_path": "s", "mem_file_path": "m"}"#).unwrap();
        assert_eq!(p.snapshot_type, SnapshotType::Full);
        p.validate().unwrap();
        let diff: SnapshotCreateParams = serde_json::from_str(
            r#"{"snapshot_path": "s", "mem_file_path": "m", "snapshot_type": "Diff"}"#,
        )
        .unwrap();
        diff.validate().unwrap();
        assert_eq!(diff.snapshot_type, SnapshotType::Diff);
        assert!(serde_json::from_str::<SnapshotCreateParams>(r#"{"snapshot_path": "s"}"#).is_err());
        assert!(serde_json::from_str::<SnapshotCreateParams>(
            r#"{"snapshot_path": "s", "mem_file_path": "m", "version": "1"}"#
        )
        .is_err());
    }

    #[test]
    fn the_memory_file_comes_from_either_field() {
        let old = load(r#"{"snapshot_path": "s", "mem_file_path": "m", "resume_vm": true}"#);
        assert_eq!(old.memory_file().unwrap(), "m");
        assert!(old.resume());
        let new = load(
            r#"{"snapshot_path": "s", "mem_backend": {"backend_type": "File", "backend_path": "m2"}}"#,
        );
        assert_eq!(new.memory_file().unwrap(), "m2");
        assert!(!new.resume());
        assert!(!new.track_dirty_pages());
    }

    #[test]
    fn dirty_page_tracking_comes_from_either_name() {
        for (fields, tracked) in [
            (r#""track_dirty_pages": true"#, true),
            (r#""enable_diff_snapshots": true"#, true),
            (
                r#""track_dirty_pages": false, "enable_diff_snapshots": true"#,
                false,
            ),
            (r#""track_dirty_pages": false"#, false),
        ] {
            let json = format!(r#"{{"snapshot_path": "s", "mem_file_path": "m", {fields}}}"#);
            let p = load(&json);
            assert_eq!(p.memory_file().unwrap(), "m");
            assert_eq!(p.track_dirty_pages(), tracked, "{json}");
        }
    }

    #[test]
    fn bad_loads_say_why() {
        for (json, why) in [
            (r#"{"snapshot_path": "s"}"#, "one of mem_file_path"),
            (
                r#"{"snapshot_path": "s", "mem_file_path": "m", "mem_backend": {"backend_type": "File", "backend_path": "m"}}"#,
                "cannot both",
            ),
            (
                r#"{"snapshot_path": "s", "mem_backend": {"backend_type": "Uffd", "backend_path": "u"}}"#,
                "Uffd",
            ),
            (
                r#"{"snapshot_path": "", "mem_file_path": "m"}"#,
                "snapshot_path",
            ),
        ] {
            let err = load(json).memory_file().unwrap_err().to_string();
            assert!(err.contains(why), "{json}: {err}");
        }
    }
}
