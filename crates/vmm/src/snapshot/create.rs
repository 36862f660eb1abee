//! Taking a snapshot of a paused machine: every vCPU's state read on its
//! own parked thread, the in-kernel platform, the devices, then the RAM.

use std::path::Path;

use ::snapshot::Persist;
use hypervisor::Vcpu;
use virtio::TransportState;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use super::{write_memory, DevicesState, LegacyDevicesState, MachineState};
use crate::controller::Controller;
use crate::lifecycle::VmState;
use crate::machine::Machine;
use crate::request::{ActionError, VmmAction, VmmData};
use crate::resources::SnapshotCreateParams;
use crate::resources::VmResources;
use crate::run_control::RunControl;
use crate::vcpu_gate::PAUSE_DEADLINE;

/// Where a snapshot goes.
pub(crate) struct SnapshotPaths<'a> {
    pub state: &'a Path,
    pub memory: &'a Path,
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
        };
        self.save_snapshot(control, controller.resources(), paths)
            .map_err(ActionError)?;
        Ok(VmmData::Empty)
    }

    /// Writes the machine's state and its RAM to `paths`. The machine must
    /// be paused, so that nothing changes while it is read; it stays so.
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
            resources: serde_json::to_string(resources)
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
        write_memory(&self.ram.memory, paths.memory).map_err(|e| {
            format!(
                "cannot write the memory file {}: {e}",
                paths.memory.display()
            )
        })
    }
}
