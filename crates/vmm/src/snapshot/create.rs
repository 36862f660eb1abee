//! Taking a snapshot of a paused machine: every vCPU's state read on its
//! own parked thread, the in-kernel platform, the devices, then the RAM.

use std::path::Path;

use ::snapshot::Persist;
use hypervisor::Vcpu;
use virtio::TransportState;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use super::dirty_pages::DirtyPages;
use super::memory_file::{write_dirty_memory, write_memory};
use super::{DevicesState, LegacyDevicesState, MachineState};
use crate::controller::Controller;
use crate::lifecycle::VmState;
use crate::machine::Machine;
use crate::request::{ActionError, VmmAction, VmmData};
use crate::resources::VmResources;
use crate::resources::{SnapshotCreateParams, SnapshotType};
use crate::run_control::RunControl;
use crate::vcpu_gate::PAUSE_DEADLINE;

/// Where a snapshot goes, and what its memory file holds.
pub(crate) struct SnapshotPaths<'a> {
    pub state: &'a Path,
    pub memory: &'a Path,
    /// Full: all of RAM. Diff: the pages written since the last snapshot.
    pub kind: SnapshotType,
}

impl Machine {
    /// `PUT /snapshot/create`, on the paused machine `control` runs.
    pub(crate) fn serve_create_snapshot(
        &self,
        control: &RunControl,
        controller: &Controller,
        params: SnapshotCreateParams,
    ) -> Result<VmmData, ActionError> {
        control
            .state
            .after(&VmmAction::CreateSnapshot(params.clone()))?;
        params
            .validate()
            .map_err(|e| ActionError::new(e.to_string()))?;
        let paths = SnapshotPaths {
            state: Path::new(&params.snapshot_path),
            memory: Path::new(&params.mem_file_path),
            kind: params.snapshot_type,
        };
        self.save_snapshot(control, controller.resources(), paths)
            .map_err(ActionError)?;
        Ok(VmmData::Empty)
    }

    /// Writes the machine's state and its RAM to `paths`. The machine must
    /// be paused, so that nothing changes while it is read; it stays so.
    /// Either kind of snapshot restarts the dirty page logs, so that the
    /// next Diff holds only what changes after this one.
    pub(crate) fn save_snapshot(
        &self,
        control: &RunControl,
        resources: &VmResources,
        paths: SnapshotPaths,
    ) -> Result<(), String> {
        if control.state != VmState::Paused {
            return Err(
                "a snapshot is taken of a paused guest: pause it first (PATCH /vm {\"state\": \"Paused\"})"
                    .into(),
            );
        }
        if paths.kind == SnapshotType::Diff && !self.track_dirty_pages {
            return Err(
                "a Diff snapshot needs dirty page tracking: set track_dirty_pages in PUT /machine-config before the start (or in PUT /snapshot/load, or --track-dirty-pages)"
                    .into(),
            );
        }
        // First: a device that cannot be saved refuses the snapshot before
        // anything else is read, and an interrupt a device sends as it is
        // saved (one moderation held back) reaches the interrupt
        // controllers before they are.
        let (mut virtio, mut pci) = (Vec::new(), Vec::new());
        for transport in &self.devices.virtio {
            match devices::bus::lock(transport)
                .save()
                .map_err(|e| e.to_string())?
            {
                TransportState::Mmio(state) => virtio.push(state),
                TransportState::Pci(state) => pci.push(*state),
            }
        }
        let pci_root = self
            .devices
            .pci_root
            .as_ref()
            .map(|root| devices::bus::lock(root).save());
        let ids: Vec<u32> = (0..control.threads.len())
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let msrs = self.msr_indices.clone();
        let vcpus = control
            .gate
            .on_each_parked(
                &ids,
                move |vcpu: &mut Vcpu| {
                    vcpu.complete_pending_io()?;
                    vcpu.save_state(&msrs)
                },
                PAUSE_DEADLINE,
            )
            .ok_or("a vCPU did not save its state in time")?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot save a vCPU: {e}"))?;
        let platform = self
            .vm
            .save_platform()
            .map_err(|e| format!("cannot save the interrupt controllers and clock: {e}"))?;
        let legacy = LegacyDevicesState {
            com1: devices::bus::lock(&self.devices.com1).save(),
            i8042: devices::bus::lock(&self.devices.i8042).save(),
            acpi_pm: devices::bus::lock(&self.devices.acpi_pm).save(),
        };
        let devices = DevicesState {
            legacy,
            virtio,
            pci,
            pci_root,
        };
        let state = MachineState {
            resources: serde_json::to_string(&with_macs(resources, &self.devices.nic_macs))
                .map_err(|e| format!("cannot save the configuration: {e}"))?,
            pci: self.pci,
            memory_bytes: self.ram.memory.iter().map(|r| r.len()).sum(),
            vcpus,
            platform,
            devices,
        };
        let bytes = ::snapshot::encode(&state).map_err(|e| e.to_string())?;
        std::fs::write(paths.state, bytes)
            .map_err(|e| format!("cannot write the snapshot {}: {e}", paths.state.display()))?;
        self.write_memory_file(paths.memory, paths.kind)
    }

    /// Writes the RAM, all of it or the pages written since the last
    /// snapshot, restarting the dirty page logs; if the file cannot be
    /// written, the pages stay dirty for the next snapshot.
    fn write_memory_file(&self, path: &Path, kind: SnapshotType) -> Result<(), String> {
        let memory = &self.ram.memory;
        let dirty = DirtyPages::take(&self.vm, memory, self.track_dirty_pages)
            .map_err(|e| format!("cannot read the dirty page log: {e}"))?;
        let written = match kind {
            SnapshotType::Full => write_memory(memory, path),
            SnapshotType::Diff => write_dirty_memory(memory, &dirty, path),
        };
        written.map_err(|e| {
            dirty.give_back(memory);
            format!("cannot write the memory file {}: {e}", path.display())
        })
    }
}

/// `resources` with each NIC's MAC as the guest sees it: one drawn at
/// random at boot is not drawn again on restore.
fn with_macs(resources: &VmResources, macs: &[[u8; 6]]) -> VmResources {
    let mut resources = resources.clone();
    for (nic, mac) in resources.network_interfaces.iter_mut().zip(macs) {
        nic.guest_mac = Some(virtio::net::config::format_mac(mac));
    }
    resources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_macs_are_kept_in_the_configuration() {
        let resources = VmResources::from_json(
            r#"{"boot-source": {"kernel_image_path": "k"},
                "network-interfaces": [
                    {"iface_id": "a", "host_dev_name": "tap0"},
                    {"iface_id": "b", "host_dev_name": "tap1", "guest_mac": "02:00:00:00:00:09"}]}"#,
        )
        .unwrap();
        let saved = with_macs(&resources, &[[2, 1, 2, 3, 4, 5], [2, 0, 0, 0, 0, 9]]);
        let macs: Vec<_> = saved
            .network_interfaces
            .iter()
            .map(|n| n.guest_mac.as_deref().unwrap())
            .collect();
        assert_eq!(macs, ["02:01:02:03:04:05", "02:00:00:00:00:09"]);
    }
}
