//! The whole configuration, in Firecracker's config-file format (what
//! `--config-file` reads and `GET /vm/config` shows), and its conversion
//! to and from Pointsman's [`VmConfig`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    validate_id, Balloon, BootSource, Drive, Entropy, Logger, MachineConfig, Metrics,
    NetworkInterface, ResourceError, Vsock,
};
use crate::{HugePages, KernelSource, SerialOutput, VmConfig, DEFAULT_CMDLINE};

/// `kernel_image_path` of a guest whose kernel is built into Pointsman
/// (the demo guest), which has no file.
pub const EMBEDDED_KERNEL_PATH: &str = "<built-in demo guest>";

const MIB: u64 = 1 << 20;

/// Everything a guest is made of. Sections Pointsman lacks
/// (`cpu-config`, `mmds-config`, `memory-hotplug`, a non-empty `pmem`)
/// parse, so that the refusal can name them, and are refused by
/// [`VmResources::validate`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VmResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balloon: Option<Balloon>,
    #[serde(default)]
    pub drives: Vec<Drive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_source: Option<BootSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<Logger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_config: Option<MachineConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    #[serde(default)]
    pub network_interfaces: Vec<NetworkInterface>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock: Option<Vsock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<Entropy>,
    #[serde(default, skip_serializing)]
    cpu_config: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    mmds_config: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    memory_hotplug: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pmem: Option<serde_json::Value>,
}

impl VmResources {
    /// Parses a config file's text and validates it.
    pub fn from_json(text: &str) -> Result<VmResources, ResourceError> {
        let resources: VmResources = serde_json::from_str(text)?;
        resources.validate()?;
        Ok(resources)
    }

    /// Checks each section, and what no section can check alone: unique
    /// ids and TAPs, one root drive, a balloon within guest memory.
    pub fn validate(&self) -> Result<(), ResourceError> {
        self.refuse_unsupported()?;
        if let Some(boot) = &self.boot_source {
            boot.validate()?;
        }
        let machine = self.machine_config.clone().unwrap_or_default();
        machine.validate()?;
        let mut root = None;
        for (i, drive) in self.drives.iter().enumerate() {
            drive.validate()?;
            if self.drives[..i]
                .iter()
                .any(|d| d.drive_id == drive.drive_id)
            {
                return Err(ResourceError::DuplicateId {
                    kind: "drive",
                    id: drive.drive_id.clone(),
                });
            }
            if drive.is_root_device && root.replace(&drive.drive_id).is_some() {
                return Err(ResourceError::SecondRootDevice(drive.drive_id.clone()));
            }
        }
        for (i, iface) in self.network_interfaces.iter().enumerate() {
            iface.validate()?;
            let earlier = &self.network_interfaces[..i];
            if earlier.iter().any(|n| n.iface_id == iface.iface_id) {
                return Err(ResourceError::DuplicateId {
                    kind: "network interface",
                    id: iface.iface_id.clone(),
                });
            }
            if earlier
                .iter()
                .any(|n| n.host_dev_name == iface.host_dev_name)
            {
                return Err(ResourceError::DuplicateTap(iface.host_dev_name.clone()));
            }
        }
        if let Some(vsock) = &self.vsock {
            vsock.validate()?;
        }
        if let Some(balloon) = &self.balloon {
            balloon.validate()?;
            if u64::from(balloon.amount_mib) > machine.mem_size_mib {
                return Err(ResourceError::BalloonTooLarge {
                    amount: u64::from(balloon.amount_mib),
                    memory: machine.mem_size_mib,
                });
            }
        }
        if let Some(entropy) = &self.entropy {
            entropy.validate()?;
        }
        if let Some(logger) = &self.logger {
            logger.validate()?;
        }
        if let Some(metrics) = &self.metrics {
            metrics.validate()?;
        }
        Ok(())
    }

    fn refuse_unsupported(&self) -> Result<(), ResourceError> {
        if self.cpu_config.is_some() {
            return Err(ResourceError::Unsupported(
                "cpu-config (custom CPU templates)",
            ));
        }
        if self.mmds_config.is_some() {
            return Err(ResourceError::Unsupported(
                "mmds-config (the microVM metadata service)",
            ));
        }
        if self.memory_hotplug.is_some() {
            return Err(ResourceError::Unsupported("memory-hotplug"));
        }
        let no_pmem = match &self.pmem {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::Array(devices)) => devices.is_empty(),
            Some(_) => false,
        };
        if !no_pmem {
            return Err(ResourceError::Unsupported("pmem (virtio-pmem devices)"));
        }
        Ok(())
    }

    /// Checks that every host file named (kernel, initrd, drive images)
    /// can be opened, so that a missing one is refused by name.
    pub fn check_files(&self) -> Result<(), ResourceError> {
        if let Some(boot) = &self.boot_source {
            boot.check_files()?;
        }
        self.drives.iter().try_for_each(Drive::check_files)
    }

    /// The guest Pointsman boots. The root drive, if any, becomes the
    /// first disk and adds `root=` to the command line; `boot_args` left
    /// out gives Pointsman's default command line. `no_reboot` and `pci`
    /// are the caller's (the command line's) to set.
    pub fn to_vm_config(&self) -> Result<VmConfig, ResourceError> {
        self.validate()?;
        let boot = self
            .boot_source
            .as_ref()
            .ok_or(ResourceError::NoBootSource)?;
        let machine = self.machine_config.clone().unwrap_or_default();
        let mut cmdline = boot
            .boot_args
            .clone()
            .unwrap_or_else(|| DEFAULT_CMDLINE.to_owned());
        let root = self.drives.iter().find(|d| d.is_root_device);
        if let Some(root) = root {
            if !cmdline.is_empty() {
                cmdline.push(' ');
            }
            cmdline.push_str(&root.root_args());
        }
        let ordered = root
            .into_iter()
            .chain(self.drives.iter().filter(|d| !d.is_root_device));
        Ok(VmConfig {
            kernel: KernelSource::File(PathBuf::from(&boot.kernel_image_path)),
            initrd: boot.initrd_path.as_ref().map(PathBuf::from),
            cmdline,
            cpus: machine.vcpu_count,
            memory: machine.memory_bytes()?,
            huge_pages: machine.huge_pages_advice(),
            track_dirty_pages: machine.track_dirty_pages,
            no_reboot: false,
            rng: self.entropy.is_some(),
            balloon: self
                .balloon
                .as_ref()
                .map(Balloon::to_balloon_config)
                .transpose()?,
            vsock: self
                .vsock
                .as_ref()
                .map(Vsock::to_vsock_config)
                .transpose()?,
            disks: ordered
                .map(Drive::to_disk_config)
                .collect::<Result<_, _>>()?,
            net: self
                .network_interfaces
                .iter()
                .map(NetworkInterface::to_net_config)
                .collect::<Result<_, _>>()?,
            pci: false,
            serial: SerialOutput::default(),
        })
    }

    /// The configuration of a guest booted from Pointsman's own command
    /// line, as `GET /vm/config` shows it. Memory shows in whole MiB
    /// (rounded down), and disks and NICs get ids (`driveN`, `ethN`)
    /// where the command line gave none. The built-in demo kernel shows
    /// as [`EMBEDDED_KERNEL_PATH`].
    pub fn from_vm_config(config: &VmConfig) -> VmResources {
        let kernel_image_path = match &config.kernel {
            KernelSource::File(path) => path.to_string_lossy().into_owned(),
            KernelSource::Embedded(_) => EMBEDDED_KERNEL_PATH.to_owned(),
        };
        let mut drives: Vec<Drive> = Vec::with_capacity(config.disks.len());
        for (i, disk) in config.disks.iter().enumerate() {
            let mut drive = Drive::from_disk_config(i, disk);
            // Two disks given the same serial on the command line.
            if drives.iter().any(|d| d.drive_id == drive.drive_id) {
                drive.drive_id = format!("drive{i}");
            }
            drives.push(drive);
        }
        VmResources {
            balloon: config.balloon.as_ref().map(Balloon::from_balloon_config),
            drives,
            boot_source: Some(BootSource {
                kernel_image_path,
                initrd_path: config
                    .initrd
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                boot_args: Some(config.cmdline.clone()),
            }),
            logger: None,
            machine_config: Some(MachineConfig {
                vcpu_count: config.cpus,
                mem_size_mib: config.memory / MIB,
                huge_pages: match config.huge_pages {
                    HugePages::On => super::HugePagesConfig::Hugetlbfs2M,
                    HugePages::HostPolicy | HugePages::Off => super::HugePagesConfig::None,
                },
                track_dirty_pages: config.track_dirty_pages,
                ..MachineConfig::default()
            }),
            metrics: None,
            network_interfaces: config
                .net
                .iter()
                .enumerate()
                .map(|(i, net)| NetworkInterface::from_net_config(i, net))
                .collect(),
            vsock: config.vsock.as_ref().map(Vsock::from_vsock_config),
            entropy: config.rng.then(Entropy::default),
            ..VmResources::default()
        }
    }

    /// The drive named `drive_id`, if there is one.
    pub fn drive(&self, drive_id: &str) -> Option<&Drive> {
        self.drives.iter().find(|d| d.drive_id == drive_id)
    }

    /// Adds `drive`, or replaces the drive with its id, as a
    /// `PUT /drives/{id}` before boot does; on an error nothing changes.
    pub fn put_drive(&mut self, drive: Drive) -> Result<(), ResourceError> {
        validate_id("drive_id", &drive.drive_id)?;
        let mut updated = self.clone();
        match updated
            .drives
            .iter_mut()
            .find(|d| d.drive_id == drive.drive_id)
        {
            Some(slot) => *slot = drive,
            None => updated.drives.push(drive),
        }
        updated.validate()?;
        *self = updated;
        Ok(())
    }

    /// Adds `iface`, or replaces the interface with its id, as a
    /// `PUT /network-interfaces/{id}` before boot does; on an error
    /// nothing changes.
    pub fn put_network_interface(&mut self, iface: NetworkInterface) -> Result<(), ResourceError> {
        validate_id("iface_id", &iface.iface_id)?;
        let mut updated = self.clone();
        match updated
            .network_interfaces
            .iter_mut()
            .find(|n| n.iface_id == iface.iface_id)
        {
            Some(slot) => *slot = iface,
            None => updated.network_interfaces.push(iface),
        }
        updated.validate()?;
        *self = updated;
        Ok(())
    }
}

#[cfg(test)]
#[path = "vm_resources_tests.rs"]
mod tests;
