//! Bringing a snapshot back: the files checked before anything is built,
//! then a machine made as a boot makes one, but over the memory file, with
//! the devices, the in-kernel platform and the vCPUs put back as saved
//! instead of a kernel loaded.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arch::x86_64::cpu_features::missing_features;
use hypervisor::Hypervisor;

use super::MachineState;
use crate::config::VmConfig;
use crate::generation_id;
use crate::machine::{Machine, Platform};
use crate::memory::map_memory_file;
use crate::net::Taps;
use crate::resources::VmResources;
use crate::{Error, Result};

/// A snapshot read and checked, ready to become a machine.
pub(crate) struct LoadedSnapshot {
    pub state: MachineState,
    /// The guest's configuration, as it was when the snapshot was taken.
    pub resources: VmResources,
    pub memory: File,
}

/// The most a snapshot file (machine state, not RAM) may hold: far more
/// than any machine's state takes (kilobytes per vCPU), so that a path to
/// something endless (`/dev/zero`) is refused rather than read for ever.
const MAX_STATE_BYTES: u64 = 64 << 20;

/// The file at `path`, if it holds at most [`MAX_STATE_BYTES`].
fn read_limited(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(format!(
            "it is larger than a snapshot's {} MiB",
            MAX_STATE_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// The machine state in a snapshot file's `bytes`, checked as far as it
/// can be without a machine.
pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<MachineState, String> {
    let state: MachineState = ::snapshot::decode(bytes).map_err(|e| e.to_string())?;
    state.check()?;
    Ok(state)
}

/// What a snapshot file holds, for `pointsman snapshot describe` and
/// tools; an error says why the file cannot be restored.
#[derive(Debug)]
pub struct SnapshotInfo {
    pub format_version: u32,
    pub vcpus: usize,
    pub memory_bytes: u64,
    /// The guest's configuration, in the config file's format.
    pub resources: VmResources,
}

/// Reads a snapshot file's `bytes` as a restore would, short of a machine.
pub fn describe_snapshot(bytes: &[u8]) -> std::result::Result<SnapshotInfo, String> {
    let state = decode(bytes)?;
    let resources = VmResources::from_json(&state.resources)
        .map_err(|e| format!("its configuration does not parse: {e}"))?;
    Ok(SnapshotInfo {
        format_version: ::snapshot::FORMAT_VERSION,
        vcpus: state.vcpus.len(),
        memory_bytes: state.memory_bytes,
        resources,
    })
}

impl LoadedSnapshot {
    /// Reads the snapshot at `state_path` and opens `memory_path`,
    /// refusing a file that is not a whole, intact snapshot of this
    /// format, and a memory file of another size than the guest's RAM.
    pub(crate) fn open(state_path: &Path, memory_path: &Path) -> Result<LoadedSnapshot> {
        let refused = |reason: String| Error::SnapshotFile {
            path: state_path.to_owned(),
            reason,
        };
        let bytes = read_limited(state_path).map_err(refused)?;
        let state = decode(&bytes).map_err(refused)?;
        let resources = VmResources::from_json(&state.resources)
            .map_err(|e| refused(format!("its configuration does not parse: {e}")))?;
        let memory = File::open(memory_path).map_err(|source| Error::OpenFile {
            what: "memory file",
            path: memory_path.to_owned(),
            source,
        })?;
        let len = memory
            .metadata()
            .map_err(|source| Error::OpenFile {
                what: "memory file",
                path: memory_path.to_owned(),
                source,
            })?
            .len();
        if len != state.memory_bytes {
            return Err(Error::SnapshotMismatch(format!(
                "the memory file {} has {len} bytes, the snapshot's guest has {} bytes of RAM",
                memory_path.display(),
                state.memory_bytes
            )));
        }
        Ok(LoadedSnapshot {
            state,
            resources,
            memory,
        })
    }

    /// The configuration the restored machine is built from.
    pub(crate) fn config(&self) -> Result<VmConfig> {
        let mut config = self
            .resources
            .to_vm_config()
            .map_err(|e| Error::SnapshotMismatch(format!("its configuration: {e}")))?;
        config.memory = self.state.memory_bytes;
        config.pci = self.state.pci;
        Ok(config)
    }
}

impl Machine {
    /// The machine `loaded` saved, on this host. Refused before anything
    /// runs if the host's KVM lacks a CPU feature the guest saw.
    pub(crate) fn restore(
        loaded: &LoadedSnapshot,
        config: &VmConfig,
        hypervisor: &Hypervisor,
        taps: &Taps,
    ) -> Result<Machine> {
        let state = &loaded.state;
        let cpus = usize::try_from(config.cpus).unwrap_or(usize::MAX);
        if state.vcpus.len() != cpus {
            return Err(Error::SnapshotMismatch(format!(
                "it holds {} vCPUs, its configuration {cpus}",
                state.vcpus.len()
            )));
        }
        let supported = hypervisor.supported_cpuid()?;
        for vcpu in &state.vcpus {
            let missing = missing_features(&vcpu.cpuid, supported);
            if !missing.is_empty() {
                return Err(Error::SnapshotMismatch(format!(
                    "this host's CPU lacks features the guest was using: {}",
                    missing.join(", ")
                )));
            }
        }
        let ram = map_memory_file(&loaded.memory, state.memory_bytes, config.huge_pages)?;
        let platform = Platform::build(config, hypervisor, taps, &ram, Some(&state.devices))?;
        platform.vm.restore_platform(&state.platform)?;
        let mut vcpus = Vec::with_capacity(cpus);
        for (id, saved) in (0u32..).zip(&state.vcpus) {
            let vcpu = platform.vm.create_vcpu(id)?;
            vcpu.restore_state(saved)?;
            vcpus.push(vcpu);
        }
        // Now that the interrupt controllers are back: a device's saved
        // pulse may not have reached them before they were saved.
        for transport in &platform.devices.virtio {
            devices::bus::lock(transport).resend_interrupt();
        }
        // A restored guest is a new generation of its machine: clones of
        // one snapshot must not go on with the same random state. After
        // the interrupt controllers are restored, so the edge is kept.
        generation_id::renew(&ram.memory, &platform.devices.ged_irq)?;
        Machine::assemble(config, platform, vcpus, ram, hypervisor)
    }
}
