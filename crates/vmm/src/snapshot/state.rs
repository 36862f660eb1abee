//! What a snapshot file holds: everything the guest can observe of the
//! machine but its RAM (which goes to the memory file).

use devices::acpi_pm::AcpiPmState;
use devices::i8042::I8042State;
use devices::serial::UartState;
use hypervisor::{PlatformState, VcpuState};
use serde::{Deserialize, Serialize};
use virtio::MmioState;

/// A paused machine, as [`snapshot::encode`] writes it.
#[derive(Serialize, Deserialize)]
pub(crate) struct MachineState {
    /// The configuration in the config file's format (JSON: its optional
    /// fields do not suit the snapshot's compact encoding), from which the
    /// restored machine's devices are built, and which `GET /vm/config`
    /// shows afterwards.
    pub resources: String,
    /// Whether the virtio devices were on PCI.
    pub pci: bool,
    /// Guest RAM in bytes: the memory file's exact length.
    pub memory_bytes: u64,
    pub vcpus: Vec<VcpuState>,
    pub platform: PlatformState,
    pub devices: DevicesState,
}

/// Every device's state.
#[derive(Serialize, Deserialize)]
pub(crate) struct DevicesState {
    pub legacy: LegacyDevicesState,
    /// The virtio-mmio transports and their devices, in device order (the
    /// order `create_devices` builds them in from the configuration).
    pub virtio: Vec<MmioState>,
}

/// The devices every machine has (pvpanic holds nothing).
#[derive(Serialize, Deserialize)]
pub(crate) struct LegacyDevicesState {
    pub com1: UartState,
    pub i8042: I8042State,
    pub acpi_pm: AcpiPmState,
}
