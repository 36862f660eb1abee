//! Drives the PCI configuration ports (CONFIG_ADDRESS and CONFIG_DATA)
//! with fuzzer-chosen accesses of any width and offset, against a bus
//! holding the host bridge and a device with a 64-bit BAR and capabilities.
#![no_main]

use std::sync::{Arc, Mutex};

use devices::pci::consts::{PCI_CAP_ID_MSIX, PCI_CAP_ID_VENDOR};
use devices::pci::{PciConfiguration, PciDevice, PciHeader, PciRoot};
use devices::BusDevice;
use libfuzzer_sys::fuzz_target;

/// Each access: kind and width byte, offset byte, 4-byte value.
const OP_LEN: usize = 6;

/// A device that is nothing but its configuration space.
struct ConfigOnly(PciConfiguration);

impl PciDevice for ConfigOnly {
    fn read_config_register(&mut self, reg: usize) -> u32 {
        self.0.read_register(reg)
    }
    fn write_config_register(&mut self, reg: usize, offset: u64, data: &[u8]) {
        self.0.write_register(reg, offset, data);
    }
}

fn device() -> ConfigOnly {
    let mut config = PciConfiguration::new(&PciHeader {
        vendor_id: 0x1af4,
        device_id: 0x1044,
        class_code: 0xff,
        ..PciHeader::default()
    });
    config.add_memory_bar(0, 0x1_0000_0000, 0x4000).unwrap();
    let msix = config
        .add_capability(PCI_CAP_ID_MSIX, &[0x01, 0x00, 0, 0, 0, 0, 0, 0x20, 0, 0])
        .unwrap();
    config.set_writable(msix + 3, &[0xc0]).unwrap();
    let vendor = config
        .add_capability(
            PCI_CAP_ID_VENDOR,
            &[20, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        )
        .unwrap();
    config.set_writable(vendor + 4, &[0xff; 16]).unwrap();
    ConfigOnly(config)
}

fuzz_target!(|data: &[u8]| {
    let mut root = PciRoot::new();
    root.add_device(Arc::new(Mutex::new(device()))).unwrap();
    for op in data.chunks_exact(OP_LEN).take(256) {
        let width = [1usize, 2, 4, 8][usize::from(op[0] & 3)];
        let offset = u64::from(op[1] % 8);
        let value = [op[2], op[3], op[4], op[5], 0, 0, 0, 0];
        if op[0] & 0x80 != 0 {
            root.write(offset, &value[..width]);
        } else {
            let mut out = [0u8; 8];
            root.read(offset, &mut out[..width]);
        }
    }
});
