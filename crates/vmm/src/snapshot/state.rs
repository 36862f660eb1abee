//! What a snapshot file holds: everything the guest can observe of the
//! machine but its RAM (which goes to the memory file).

use ::snapshot::Persist;
use devices::acpi_pm::{AcpiPm, AcpiPmState};
use devices::i8042::{I8042State, I8042};
use devices::pci::PciRootState;
use devices::serial::{SerialDevice, UartEdges, UartState};
use devices::{StateError, Trigger};
use hypervisor::{PlatformState, VcpuState};
use serde::{Deserialize, Serialize};
use virtio::transport::pci::VirtioPciState;
use virtio::MmioState;
use vm_superio::serial::NoEvents;

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
    /// The virtio-pci functions and their devices, in device order, for
    /// a machine whose virtio devices are on PCI (`virtio` is then empty).
    pub pci: Vec<VirtioPciState>,
    /// The root of PCI bus 0 (CONFIG_ADDRESS, the host bridge), on PCI.
    pub pci_root: Option<PciRootState>,
}

impl DevicesState {
    /// Refuses virtio transports that are not the `devices` virtio
    /// devices a configuration builds, each on the transport it picks
    /// (PCI or MMIO), with the PCI root's state exactly on PCI.
    pub(crate) fn check_transports(&self, pci: bool, devices: usize) -> Result<(), String> {
        let (mmio, functions) = if pci { (0, devices) } else { (devices, 0) };
        let counts = [
            ("virtio-mmio devices", self.virtio.len(), mmio),
            ("virtio-pci functions", self.pci.len(), functions),
            (
                "PCI roots",
                usize::from(self.pci_root.is_some()),
                usize::from(pci),
            ),
        ];
        for (what, saved, configured) in counts {
            if saved != configured {
                return Err(format!(
                    "it holds {saved} {what}, its configuration {configured}"
                ));
            }
        }
        Ok(())
    }
}

/// The devices every machine has (pvpanic holds nothing).
#[derive(Serialize, Deserialize)]
pub(crate) struct LegacyDevicesState {
    pub com1: UartState,
    pub i8042: I8042State,
    pub acpi_pm: AcpiPmState,
}

/// An edge of a device checked apart from any machine: wired to nothing.
struct Unwired;

impl Trigger for Unwired {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LegacyDevicesState {
    /// Refuses a device state the device would refuse on restore, before
    /// any machine is built: each device restores from it once, wired to
    /// nothing.
    pub(crate) fn check(&self) -> Result<(), StateError> {
        let uart = UartEdges {
            irq: Unwired,
            events: NoEvents,
            out: std::io::sink(),
            metrics: Default::default(),
        };
        SerialDevice::restore(uart, &self.com1)?;
        I8042::restore((Unwired, Unwired), &self.i8042)?;
        AcpiPm::restore((Unwired, Unwired), &self.acpi_pm)?;
        Ok(())
    }
}

impl MachineState {
    /// Refuses a state no machine could have been in: device states the
    /// devices refuse, no vCPU, no RAM.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.vcpus.is_empty() {
            return Err("it holds no vCPU".into());
        }
        if self.memory_bytes == 0 {
            return Err("its guest has no RAM".into());
        }
        self.devices.legacy.check().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use devices::pci::PciRoot;

    use super::*;

    /// The state of a machine with no virtio device, on MMIO.
    fn no_virtio() -> DevicesState {
        DevicesState {
            legacy: LegacyDevicesState {
                com1: SerialDevice::new(Unwired, NoEvents, std::io::sink()).save(),
                i8042: I8042::new(Unwired, Unwired).save(),
                acpi_pm: AcpiPm::new(Unwired, Unwired, 5, 6).save(),
            },
            virtio: Vec::new(),
            pci: Vec::new(),
            pci_root: None,
        }
    }

    #[test]
    fn transports_must_be_the_configurations() {
        let mmio = no_virtio();
        assert_eq!(mmio.check_transports(false, 0), Ok(()));
        assert_eq!(
            mmio.check_transports(true, 0).unwrap_err(),
            "it holds 0 PCI roots, its configuration 1"
        );
        let pci = DevicesState {
            pci_root: Some(PciRoot::new().save()),
            ..no_virtio()
        };
        assert_eq!(pci.check_transports(true, 0), Ok(()));
        assert_eq!(
            pci.check_transports(true, 2).unwrap_err(),
            "it holds 0 virtio-pci functions, its configuration 2"
        );
        assert_eq!(
            pci.check_transports(false, 0).unwrap_err(),
            "it holds 1 PCI roots, its configuration 0"
        );
        assert_eq!(
            mmio.check_transports(false, 1).unwrap_err(),
            "it holds 0 virtio-mmio devices, its configuration 1"
        );
    }
}
