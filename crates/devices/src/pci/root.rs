//! PCI configuration mechanism #1: CONFIG_ADDRESS at port 0xcf8 selects a
//! bus, device, function and register; CONFIG_DATA at 0xcfc..0xcff reads
//! or writes it. Only bus 0 and function 0 exist here.

use std::sync::{Arc, Mutex};

use super::host_bridge::PciHostBridge;
use super::{PciDevice, PciError};
use crate::bus::{lock, BusDevice};

/// CONFIG_ADDRESS (4 ports) and CONFIG_DATA (4 ports).
pub const PCI_CONFIG_PORT_LEN: u64 = 8;

const CONFIG_DATA: u64 = 4;
const ENABLE: u32 = 1 << 31;
/// Bits 30:28 are reserved and read 0; so do the low two bits, because
/// CONFIG_DATA covers the whole dword.
pub(super) const ADDRESS_BITS: u32 = ENABLE | 0x0fff_fffc;
/// Bits 27:24 select registers past 0xff on AMD chipsets with extended
/// configuration access. Those registers do not exist here, and an access
/// to one must not alias the register in its low byte.
const EXTENDED_REGISTER: u32 = 0x0f00_0000;
const MAX_DEVICES: usize = 32;

/// The root of bus 0 and the ports that reach it.
pub struct PciRoot {
    pub(super) config_address: u32,
    /// Device 0, also in `devices`: kept apart for snapshots.
    pub(super) host_bridge: Arc<Mutex<PciHostBridge>>,
    devices: [Option<Arc<Mutex<dyn PciDevice>>>; MAX_DEVICES],
}

impl PciRoot {
    /// A bus with only the host bridge, at device 0.
    pub fn new() -> Self {
        let mut devices: [Option<Arc<Mutex<dyn PciDevice>>>; MAX_DEVICES] =
            std::array::from_fn(|_| None);
        let host_bridge = Arc::new(Mutex::new(PciHostBridge::new()));
        devices[0] = Some(host_bridge.clone());
        PciRoot {
            config_address: 0,
            host_bridge,
            devices,
        }
    }

    /// Puts `device` in the lowest free slot and returns its device number.
    pub fn add_device(&mut self, device: Arc<Mutex<dyn PciDevice>>) -> Result<u8, PciError> {
        let (number, slot) = self
            .devices
            .iter_mut()
            .enumerate()
            .find(|(_, slot)| slot.is_none())
            .ok_or(PciError::BusFull)?;
        let number = u8::try_from(number).map_err(|_| PciError::BusFull)?;
        *slot = Some(device);
        Ok(number)
    }

    /// The device and register CONFIG_ADDRESS selects, if it exists.
    fn selected(&self) -> Option<(&Arc<Mutex<dyn PciDevice>>, usize)> {
        let address = self.config_address;
        let bus = (address >> 16) & 0xff;
        let device = (address >> 11) & 0x1f;
        let function = (address >> 8) & 0x7;
        if address & ENABLE == 0 || address & EXTENDED_REGISTER != 0 || bus != 0 || function != 0 {
            return None;
        }
        let device = self.devices.get(usize::try_from(device).ok()?)?.as_ref()?;
        let reg = usize::try_from((address >> 2) & 0x3f).ok()?;
        Some((device, reg))
    }
}

impl Default for PciRoot {
    fn default() -> Self {
        Self::new()
    }
}

/// The byte inside the CONFIG_DATA dword that an access of `len` bytes at
/// port offset `offset` starts at, if the access stays inside it.
fn data_byte(offset: u64, len: usize) -> Option<usize> {
    let byte = usize::try_from(offset.checked_sub(CONFIG_DATA)?).ok()?;
    (matches!(len, 1 | 2 | 4) && byte < 4 && byte + len <= 4).then_some(byte)
}

impl BusDevice for PciRoot {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // Whatever nothing answers reads as a floating bus: all-ones.
        data.fill(0xff);
        if offset == 0 && data.len() == 4 {
            data.copy_from_slice(&self.config_address.to_le_bytes());
            return;
        }
        let Some(byte) = data_byte(offset, data.len()) else {
            return;
        };
        let Some((device, reg)) = self.selected() else {
            return;
        };
        let dword = lock(device).read_config_register(reg).to_le_bytes();
        if let Some(bytes) = dword.get(byte..byte + data.len()) {
            data.copy_from_slice(bytes);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == 0 {
            // Only dword writes reach CONFIG_ADDRESS. Linux's type-1 probe
            // writes the byte 0xcfb first (a mechanism-select port on old
            // chipsets) and must find CONFIG_ADDRESS untouched by it.
            if let &[a, b, c, d] = data {
                self.config_address = u32::from_le_bytes([a, b, c, d]) & ADDRESS_BITS;
            }
            return;
        }
        let Some(byte) = data_byte(offset, data.len()) else {
            return;
        };
        if let Some((device, reg)) = self.selected() {
            lock(device).write_config_register(reg, byte as u64, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records config writes and reads back a value naming the register.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(usize, u64, Vec<u8>)>,
    }

    impl PciDevice for Recorder {
        fn read_config_register(&mut self, reg: usize) -> u32 {
            0x4433_2200 | u32::try_from(reg).unwrap_or(0xff)
        }
        fn write_config_register(&mut self, reg: usize, offset: u64, data: &[u8]) {
            self.writes.push((reg, offset, data.to_vec()));
        }
    }

    fn address(device: u32, function: u32, reg: u32) -> u32 {
        ENABLE | (device << 11) | (function << 8) | (reg << 2)
    }

    fn outl(root: &mut PciRoot, offset: u64, value: u32) {
        root.write(offset, &value.to_le_bytes());
    }

    fn inl(root: &mut PciRoot, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        root.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    fn inw(root: &mut PciRoot, offset: u64) -> u16 {
        let mut data = [0u8; 2];
        root.read(offset, &mut data);
        u16::from_le_bytes(data)
    }

    #[test]
    fn linux_type_1_probe_finds_the_mechanism() {
        // pci_check_type1() in arch/x86/pci/direct.c.
        let mut root = PciRoot::new();
        root.write(3, &[0x01]);
        let saved = inl(&mut root, 0);
        outl(&mut root, 0, 0x8000_0000);
        assert_eq!(inl(&mut root, 0), 0x8000_0000);
        outl(&mut root, 0, saved);
        assert_eq!(inl(&mut root, 0), 0);
    }

    #[test]
    fn host_bridge_is_visible_at_00_00_0() {
        // pci_sanity_check(): word reads of the class and the vendor id.
        let mut root = PciRoot::new();
        outl(&mut root, 0, address(0, 0, 2));
        assert_eq!(inw(&mut root, 6), 0x0600);
        outl(&mut root, 0, address(0, 0, 0));
        assert_eq!(inw(&mut root, 4), 0x1b36);
        assert_eq!(inw(&mut root, 6), 0x0008);
        assert_eq!(inl(&mut root, 4), 0x0008_1b36);
    }

    #[test]
    fn empty_slots_other_functions_and_buses_read_all_ones() {
        let mut root = PciRoot::new();
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        assert_eq!(root.add_device(recorder.clone()), Ok(1));
        for addr in [
            address(2, 0, 0),
            address(31, 0, 0),
            address(1, 1, 0),
            address(0, 7, 0),
            address(1, 0, 0) | (1 << 16),
            address(1, 0, 0) & !ENABLE,
            address(1, 0, 0) | (1 << 24),
        ] {
            outl(&mut root, 0, addr);
            assert_eq!(inl(&mut root, 4), u32::MAX, "{addr:#x}");
            outl(&mut root, 4, 0);
            root.write(5, &[0]);
        }
        assert!(recorder.lock().unwrap().writes.is_empty());
    }

    #[test]
    fn data_accesses_carry_their_byte_offset() {
        let mut root = PciRoot::new();
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        root.add_device(recorder.clone()).unwrap();
        outl(&mut root, 0, address(1, 0, 0x11));
        assert_eq!(inl(&mut root, 4), 0x4433_2211);
        assert_eq!(inw(&mut root, 6), 0x4433);
        let mut byte = [0u8; 1];
        root.read(7, &mut byte);
        assert_eq!(byte, [0x44]);
        root.write(7, &[1]);
        root.write(6, &[2, 3]);
        outl(&mut root, 4, 0x0706_0504);
        assert_eq!(
            recorder.lock().unwrap().writes,
            vec![
                (0x11, 3, vec![1]),
                (0x11, 2, vec![2, 3]),
                (0x11, 0, vec![4, 5, 6, 7]),
            ]
        );
    }

    #[test]
    fn odd_widths_and_offsets_are_harmless() {
        let mut root = PciRoot::new();
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        root.add_device(recorder.clone()).unwrap();
        outl(&mut root, 0, address(1, 0, 3));
        // Narrow accesses do not reach CONFIG_ADDRESS.
        root.write(0, &[0; 2]);
        root.write(1, &[0]);
        root.write(2, &[0; 2]);
        let mut narrow = [0u8; 2];
        root.read(0, &mut narrow);
        assert_eq!(narrow, [0xff; 2]);
        assert_eq!(inl(&mut root, 0), address(1, 0, 3));
        // The low two bits and the reserved bits read 0.
        outl(&mut root, 0, address(1, 0, 3) | 0x7000_0003);
        assert_eq!(inl(&mut root, 0), address(1, 0, 3));
        for (offset, len) in [
            (5, 4),
            (7, 2),
            (6, 4),
            (4, 8),
            (0, 8),
            (4, 3),
            (4, 0),
            (8, 1),
        ] {
            let mut data = [0u8; 8];
            root.read(offset, &mut data[..len]);
            assert!(data[..len].iter().all(|&b| b == 0xff), "{offset} {len}");
            root.write(offset, &[0; 8][..len]);
        }
        root.read(u64::MAX, &mut [0u8; 4]);
        root.write(u64::MAX, &[0; 4]);
        assert_eq!(inl(&mut root, 0), address(1, 0, 3));
        assert!(recorder.lock().unwrap().writes.is_empty());
    }

    #[test]
    fn a_full_bus_refuses_more_devices() {
        let mut root = PciRoot::new();
        for expected in 1..=31 {
            let device = Arc::new(Mutex::new(Recorder::default()));
            assert_eq!(root.add_device(device), Ok(expected));
        }
        let device = Arc::new(Mutex::new(Recorder::default()));
        assert_eq!(root.add_device(device), Err(PciError::BusFull));
    }

    #[test]
    fn a_poisoned_device_still_answers() {
        let mut root = PciRoot::new();
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        root.add_device(recorder.clone()).unwrap();
        let poisoner = recorder.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("poison the device");
        })
        .join();
        assert!(recorder.is_poisoned());
        outl(&mut root, 0, address(1, 0, 0));
        assert_eq!(inl(&mut root, 4), 0x4433_2200);
        outl(&mut root, 4, 1);
    }

    #[test]
    fn random_port_accesses_never_panic() {
        // A stand-in for the fuzz target that runs with the unit tests.
        use crate::pci::config::{PciConfiguration, PciHeader};
        struct ConfigOnly(PciConfiguration);
        impl PciDevice for ConfigOnly {
            fn read_config_register(&mut self, reg: usize) -> u32 {
                self.0.read_register(reg)
            }
            fn write_config_register(&mut self, reg: usize, offset: u64, data: &[u8]) {
                self.0.write_register(reg, offset, data);
            }
        }
        let mut config = PciConfiguration::new(&PciHeader::default());
        config.add_memory_bar(2, 0x1_0000_0000, 0x4000).unwrap();
        let cap = config.add_capability(0x11, &[0; 10]).unwrap();
        config.set_writable(cap, &[0xff; 12]).unwrap();
        let mut root = PciRoot::new();
        root.add_device(Arc::new(Mutex::new(ConfigOnly(config))))
            .unwrap();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            let width = [1usize, 2, 4, 8][usize::from(bytes[0] & 3)];
            let offset = u64::from(bytes[1] % 9);
            // Mostly select device 0 or 1 on bus 0 so the data port is reached.
            let mut value = [bytes[2], bytes[3], bytes[4] & 0x0f, bytes[5] | 0x80];
            if bytes[6] & 1 == 0 {
                value[3] = 0x80;
                value[2] = 0;
                value[1] &= 0x0f;
            }
            let mut data = [0u8; 8];
            data[..4].copy_from_slice(&value);
            if bytes[0] & 0x80 != 0 {
                root.write(offset, &data[..width]);
            } else {
                root.read(offset, &mut data[..width]);
            }
        }
    }
}
