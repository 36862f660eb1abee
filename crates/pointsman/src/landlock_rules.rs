//! `pointsman run --landlock`: the files the VMM may use, from its guest's
//! configuration (or its snapshot's), given to Landlock before any thread
//! starts. `pointsman jail` turns it on, with the jail's root allowed.

use std::path::{Path, PathBuf};

use jail::landlock::{restrict_to, FileAccess, LandlockStatus};
use vmm::{KernelSource, VmConfig, VmResources};

use crate::cli::RunArgs;
use crate::restore_overrides;

/// The KVM device every guest needs, and the TUN device NICs need.
const KVM: &str = "/dev/kvm";
const TUN: &str = "/dev/net/tun";

/// Restricts the VMM's file access to what `config` (the guest booted
/// from the command line or a config file; `None` when the API or a
/// snapshot brings it) and `args` name.
pub fn confine(
    args: &RunArgs,
    config: Option<&VmConfig>,
    resources: &VmResources,
) -> Result<(), String> {
    let mut allowed = vec![FileAccess::ReadWrite(KVM.into())];
    let restored = match (&args.restore, &args.mem_file) {
        (Some(snapshot), Some(memory)) => {
            allowed.push(FileAccess::Read(snapshot.clone()));
            allowed.push(FileAccess::Read(memory.clone()));
            Some(snapshot_config(args, snapshot)?)
        }
        _ => None,
    };
    if let Some(config) = config.or(restored.as_ref()) {
        allowed.extend(guest_files(config));
    }
    if let Some(logger) = resources.logger.as_ref().and_then(|l| l.log_path.as_ref()) {
        allowed.push(existing_or_parent(Path::new(logger)));
    }
    if let Some(metrics) = &resources.metrics {
        allowed.push(existing_or_parent(Path::new(&metrics.metrics_path)));
    }
    if let Some(socket) = &args.api_sock {
        allowed.push(FileAccess::Sockets(parent(socket)));
    }
    allowed.extend(
        args.landlock_rule
            .iter()
            .cloned()
            .map(FileAccess::Directory),
    );
    match restrict_to(&allowed).map_err(|e| e.to_string())? {
        LandlockStatus::Enforced => tracing::debug!("landlock: file access restricted"),
        LandlockStatus::PartlyEnforced => {
            tracing::warn!(
                "landlock: this kernel's Landlock is older: file truncation is not restricted"
            )
        }
        LandlockStatus::Unavailable => tracing::warn!(
            "landlock: not available in this kernel: the VMM's file access is not restricted"
        ),
    }
    Ok(())
}

/// The files a guest's devices use.
fn guest_files(config: &VmConfig) -> Vec<FileAccess> {
    let mut files = Vec::new();
    if let KernelSource::File(kernel) = &config.kernel {
        files.push(FileAccess::Read(kernel.clone()));
    }
    files.extend(config.initrd.iter().cloned().map(FileAccess::Read));
    for disk in &config.disks {
        files.push(if disk.readonly {
            FileAccess::Read(disk.path.clone())
        } else {
            FileAccess::ReadWrite(disk.path.clone())
        });
    }
    if let Some(vsock) = &config.vsock {
        // The VMM makes the socket, and one per port guests connect to,
        // beside it.
        files.push(FileAccess::Sockets(parent(&vsock.socket)));
    }
    if !config.net.is_empty() {
        files.push(FileAccess::ReadWrite(TUN.into()));
    }
    files
}

/// The configuration a snapshot brings, with the run's overrides.
fn snapshot_config(args: &RunArgs, snapshot: &Path) -> Result<VmConfig, String> {
    let bytes = std::fs::read(snapshot)
        .map_err(|e| format!("cannot read the snapshot {}: {e}", snapshot.display()))?;
    let mut resources = vmm::describe_snapshot(&bytes)
        .map_err(|e| format!("cannot load the snapshot {}: {e}", snapshot.display()))?
        .resources;
    restore_overrides::parse(&args.net, args.vsock.as_deref())?
        .apply(&mut resources)
        .map_err(|e| e.to_string())?;
    resources.to_vm_config().map_err(|e| e.to_string())
}

/// A file Landlock can name (it must exist), or its directory.
fn existing_or_parent(path: &Path) -> FileAccess {
    if path.exists() {
        FileAccess::ReadWrite(path.to_owned())
    } else {
        FileAccess::Directory(parent(path))
    }
}

/// `path`'s directory (`.` for a bare name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guests_files_are_allowed_as_its_devices_use_them() {
        let config = VmConfig {
            kernel: KernelSource::File("/k/vmlinux".into()),
            initrd: Some("/k/initrd".into()),
            disks: vec![
                vmm::DiskConfig::parse("path=/d/root.img,readonly=on").unwrap(),
                vmm::DiskConfig::parse("path=/d/data.img").unwrap(),
            ],
            vsock: Some(vmm::VsockConfig::parse("cid=3,socket=/run/vm/v.sock").unwrap()),
            net: vec![vmm::NetConfig::parse("tap=tap0").unwrap()],
            cmdline: String::new(),
            cpus: 1,
            memory: 128 << 20,
            huge_pages: vmm::HugePages::default(),
            no_reboot: false,
            rng: false,
            balloon: None,
            pci: false,
            track_dirty_pages: false,
            serial: vmm::SerialOutput::default(),
        };
        assert_eq!(
            guest_files(&config),
            [
                FileAccess::Read("/k/vmlinux".into()),
                FileAccess::Read("/k/initrd".into()),
                FileAccess::Read("/d/root.img".into()),
                FileAccess::ReadWrite("/d/data.img".into()),
                FileAccess::Sockets("/run/vm".into()),
                FileAccess::ReadWrite(TUN.into()),
            ]
        );
        assert_eq!(parent(Path::new("api.sock")), PathBuf::from("."));
    }
}
