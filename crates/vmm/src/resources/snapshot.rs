//! `PUT /snapshot/create` and `PUT /snapshot/load`: Firecracker's bodies.

use serde::{Deserialize, Serialize};

use super::network::validate_tap_name;
use super::{validate_id, ResourceError, VmResources};

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
        self.overrides().validate()?;
        Ok(path)
    }

    /// The devices' new host ends the request gives.
    pub fn overrides(&self) -> SnapshotOverrides {
        SnapshotOverrides {
            network: self.network_overrides.clone(),
            vsock: self.vsock_override.clone(),
        }
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

/// New host ends for a restored guest's devices: each clone of one
/// snapshot needs its own TAP and vsock socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotOverrides {
    pub network: Vec<NetworkOverride>,
    pub vsock: Option<VsockOverride>,
}

impl SnapshotOverrides {
    /// Checks each override on its own, before any snapshot is read.
    pub fn validate(&self) -> Result<(), ResourceError> {
        for (i, net) in self.network.iter().enumerate() {
            validate_id("iface_id", &net.iface_id)?;
            validate_tap_name(&net.host_dev_name)?;
            if self.network[..i].iter().any(|n| n.iface_id == net.iface_id) {
                return Err(ResourceError::DuplicateOverride(net.iface_id.clone()));
            }
        }
        if let Some(vsock) = &self.vsock {
            non_empty("vsock_override.uds_path", &vsock.uds_path)?;
        }
        Ok(())
    }

    /// `resources` (a snapshot's configuration) with the new host ends:
    /// an override for a NIC or vsock device the snapshot does not have
    /// is refused, as Firecracker refuses it.
    pub fn apply(&self, resources: &mut VmResources) -> Result<(), ResourceError> {
        self.validate()?;
        for net in &self.network {
            let nic = resources
                .network_interfaces
                .iter_mut()
                .find(|nic| nic.iface_id == net.iface_id)
                .ok_or_else(|| {
                    ResourceError::NoSuchOverride(format!("network interface {}", net.iface_id))
                })?;
            nic.host_dev_name.clone_from(&net.host_dev_name);
        }
        if let Some(over) = &self.vsock {
            let vsock = resources
                .vsock
                .as_mut()
                .ok_or_else(|| ResourceError::NoSuchOverride("vsock device".into()))?;
            vsock.uds_path.clone_from(&over.uds_path);
            vsock.validate()?;
        }
        Ok(())
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

    #[test]
    fn overrides_give_the_snapshots_devices_new_host_ends() {
        let mut resources = VmResources::from_json(
            r#"{"boot-source": {"kernel_image_path": "k"},
                "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"},
                                       {"iface_id": "eth1", "host_dev_name": "tap1"}],
                "vsock": {"guest_cid": 3, "uds_path": "/run/v.sock"}}"#,
        )
        .unwrap();
        let load = load(
            r#"{"snapshot_path": "s", "mem_file_path": "m",
                "network_overrides": [{"iface_id": "eth1", "host_dev_name": "tap9"}],
                "vsock_override": {"uds_path": "/run/clone.sock"}}"#,
        );
        load.memory_file().unwrap();
        load.overrides().apply(&mut resources).unwrap();
        let taps: Vec<_> = resources
            .network_interfaces
            .iter()
            .map(|n| n.host_dev_name.as_str())
            .collect();
        assert_eq!(taps, ["tap0", "tap9"]);
        assert_eq!(
            resources.vsock.as_ref().unwrap().uds_path,
            "/run/clone.sock"
        );
    }

    #[test]
    fn overrides_of_devices_the_snapshot_lacks_are_refused() {
        let mut bare =
            VmResources::from_json(r#"{"boot-source": {"kernel_image_path": "k"}}"#).unwrap();
        let nic = SnapshotOverrides {
            network: vec![NetworkOverride {
                iface_id: "eth0".into(),
                host_dev_name: "tap0".into(),
            }],
            vsock: None,
        };
        let err = nic.apply(&mut bare).unwrap_err().to_string();
        assert!(err.contains("network interface eth0"), "{err}");
        let vsock = SnapshotOverrides {
            network: Vec::new(),
            vsock: Some(VsockOverride {
                uds_path: "/x".into(),
            }),
        };
        let err = vsock.apply(&mut bare).unwrap_err().to_string();
        assert!(err.contains("vsock"), "{err}");
        let bad_tap = load(
            r#"{"snapshot_path": "s", "mem_file_path": "m",
                "network_overrides": [{"iface_id": "eth0", "host_dev_name": "a/b"}]}"#,
        );
        assert!(bad_tap.memory_file().is_err());
    }
}
