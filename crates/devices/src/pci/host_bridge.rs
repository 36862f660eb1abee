//! The host bridge at 00:00.0. It does nothing but be there: Linux's
//! `pci_sanity_check` (arch/x86/pci/direct.c) trusts configuration
//! mechanism #1 only once it finds a device on bus 0 whose class is
//! "host bridge" (or a VGA device, or an Intel or Compaq vendor id).

use super::config::{PciConfiguration, PciHeader};
use super::consts::{PCI_CLASS_BRIDGE, PCI_SUBCLASS_BRIDGE_HOST};
use super::PciDevice;

/// Red Hat's vendor id, under which QEMU allocates ids for its own devices.
const VENDOR_ID_REDHAT: u16 = 0x1b36;
/// QEMU's "PCIe host bridge" (docs/specs/pci-ids). Chosen over an Intel
/// chipset id so that no Linux quirk written for real silicon (such as the
/// i440FX's) runs against a bridge that does not have the registers it pokes.
const DEVICE_ID_HOST_BRIDGE: u16 = 0x0008;

/// A type-0 header with the host bridge class and nothing else.
pub struct PciHostBridge {
    config: PciConfiguration,
}

impl PciHostBridge {
    pub fn new() -> Self {
        PciHostBridge {
            config: PciConfiguration::new(&PciHeader {
                vendor_id: VENDOR_ID_REDHAT,
                device_id: DEVICE_ID_HOST_BRIDGE,
                revision: 0,
                class_code: PCI_CLASS_BRIDGE,
                subclass: PCI_SUBCLASS_BRIDGE_HOST,
                prog_if: 0,
                subsystem_vendor_id: VENDOR_ID_REDHAT,
                subsystem_id: DEVICE_ID_HOST_BRIDGE,
            }),
        }
    }
}

impl PciHostBridge {
    /// Its configuration space, for snapshots.
    pub fn config(&self) -> &PciConfiguration {
        &self.config
    }

    pub fn set_config(&mut self, config: PciConfiguration) {
        self.config = config;
    }
}

impl Default for PciHostBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl PciDevice for PciHostBridge {
    fn read_config_register(&mut self, reg: usize) -> u32 {
        self.config.read_register(reg)
    }

    fn write_config_register(&mut self, reg: usize, offset: u64, data: &[u8]) {
        self.config.write_register(reg, offset, data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_host_bridge_class_and_no_bars() {
        let mut bridge = PciHostBridge::new();
        assert_eq!(bridge.read_config_register(0), 0x0008_1b36);
        assert_eq!(bridge.read_config_register(2) >> 16, 0x0600);
        bridge.write_config_register(4, 0, &[0xff; 4]);
        assert_eq!(bridge.read_config_register(4), 0);
    }
}
