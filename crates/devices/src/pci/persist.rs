//! PCI configuration spaces and the root's CONFIG_ADDRESS latch in a
//! snapshot.
//!
//! A configuration space is restored over the one the VMM builds anew for
//! the same device (the template): the saved bytes may differ from it only
//! in the bits the guest may write, and its BARs must be where the VMM
//! placed them (the guest cannot move them), so a state made up for
//! another device, or one no guest could have written, is refused.

use serde::{Deserialize, Serialize};
use snapshot::Persist;

use super::config::{BarSlot, PciConfiguration};
use super::consts::PCI_CONFIG_SPACE_SIZE;
use super::root::{PciRoot, ADDRESS_BITS};
use crate::StateError;

/// A 64-bit memory BAR as the guest left it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarState {
    /// The slot of its low dword.
    pub index: u8,
    pub address: u64,
    pub size: u64,
    /// Per half (low, high): the guest wrote all-ones and reads the size
    /// mask next.
    pub sizing: [bool; 2],
}

/// What a configuration space saves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciConfigState {
    /// All 256 bytes (the BAR registers read through `bars` instead).
    pub bytes: Vec<u8>,
    pub bars: Vec<BarState>,
}

/// What the root of bus 0 saves besides its devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciRootState {
    /// CONFIG_ADDRESS: the next CONFIG_DATA access goes where it points.
    pub config_address: u32,
    pub host_bridge: PciConfigState,
}

const WHAT: &str = "PCI configuration space";

impl Persist for PciConfiguration {
    type State = PciConfigState;
    /// The space the VMM builds for the device, before the guest ran.
    type ConstructorArgs = PciConfiguration;
    type Error = StateError;

    fn save(&self) -> PciConfigState {
        let bars = self
            .bars
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| match slot {
                BarSlot::Low(bar) => Some(BarState {
                    index: u8::try_from(index).unwrap_or(u8::MAX),
                    address: bar.addr,
                    size: bar.size,
                    sizing: bar.sizing(),
                }),
                _ => None,
            })
            .collect();
        PciConfigState {
            bytes: self.bytes.to_vec(),
            bars,
        }
    }

    fn restore(template: PciConfiguration, state: &PciConfigState) -> Result<Self, StateError> {
        let mut config = template;
        if state.bytes.len() != PCI_CONFIG_SPACE_SIZE {
            return Err(StateError::new(
                WHAT,
                format!(
                    "it has {} bytes, not {PCI_CONFIG_SPACE_SIZE}",
                    state.bytes.len()
                ),
            ));
        }
        for (offset, ((&saved, &built), &writable)) in state
            .bytes
            .iter()
            .zip(&config.bytes)
            .zip(&config.writable)
            .enumerate()
        {
            if (saved ^ built) & !writable != 0 {
                return Err(StateError::new(
                    WHAT,
                    format!(
                        "byte {offset:#x} is {saved:#04x}, the device has {built:#04x} there and \
                         the guest cannot change it (another device, or a made-up state)"
                    ),
                ));
            }
        }
        let built = config.save().bars;
        if state.bars.len() != built.len() {
            return Err(StateError::new(
                WHAT,
                format!(
                    "it has {} memory BARs, the device {}",
                    state.bars.len(),
                    built.len()
                ),
            ));
        }
        for (saved, built) in state.bars.iter().zip(&built) {
            if (saved.index, saved.address, saved.size) != (built.index, built.address, built.size)
            {
                return Err(StateError::new(
                    WHAT,
                    format!(
                        "BAR {} at {:#x} ({:#x} bytes), the device has BAR {} at {:#x} ({:#x} \
                         bytes): BARs stay where the VMM placed them",
                        saved.index,
                        saved.address,
                        saved.size,
                        built.index,
                        built.address,
                        built.size
                    ),
                ));
            }
            if let Some(BarSlot::Low(bar)) = config.bars.get_mut(usize::from(saved.index)) {
                bar.set_sizing(saved.sizing);
            }
        }
        config.bytes.copy_from_slice(&state.bytes);
        Ok(config)
    }
}

impl PciRoot {
    pub fn save(&self) -> PciRootState {
        PciRootState {
            config_address: self.config_address,
            host_bridge: crate::bus::lock(&self.host_bridge).config().save(),
        }
    }

    /// Puts the root (its devices already attached) back as `state` left it.
    pub fn restore_state(&mut self, state: &PciRootState) -> Result<(), StateError> {
        if state.config_address & !ADDRESS_BITS != 0 {
            return Err(StateError::new(
                "PCI root",
                format!(
                    "CONFIG_ADDRESS {:#x} has reserved bits set",
                    state.config_address
                ),
            ));
        }
        let mut bridge = crate::bus::lock(&self.host_bridge);
        let config = PciConfiguration::restore(bridge.config().clone(), &state.host_bridge)?;
        bridge.set_config(config);
        self.config_address = state.config_address;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use snapshot::assert_round_trip;

    use super::*;
    use crate::bus::BusDevice;
    use crate::pci::PciHeader;

    fn space() -> PciConfiguration {
        let mut config = PciConfiguration::new(&PciHeader {
            vendor_id: 0x1af4,
            device_id: 0x1044,
            ..PciHeader::default()
        });
        config.add_memory_bar(0, 0xd000_0000, 0x8000).unwrap();
        let cap = config.add_capability(0x11, &[0; 10]).unwrap();
        config.set_writable(cap + 2, &[0xff, 0xc0]).unwrap();
        config
    }

    #[test]
    fn a_space_the_guest_programmed_round_trips() {
        let mut config = space();
        config.write_register(1, 0, &[0x06, 0x00]); // memory and bus master
        config.write_register(16, 2, &[0x00, 0xc0]); // MSI-X enable, mask
        config.write_register(5, 0, &u32::MAX.to_le_bytes()); // sizing
        let restored = assert_round_trip(&config, space());
        assert_eq!(restored.command(), 0x0006);
        assert_eq!(restored.read_register(16) >> 16, 0xc000);
        assert_eq!(restored.read_register(5), u32::MAX);
        assert_eq!(restored.read_register(4), 0xd000_0004);
    }

    #[test]
    fn read_only_bytes_and_moved_bars_are_refused() {
        let mut state = space().save();
        state.bytes[0] = 0x12; // vendor id
        let err = PciConfiguration::restore(space(), &state).unwrap_err();
        assert!(err.to_string().contains("byte 0x0"), "{err}");

        let mut state = space().save();
        state.bars[0].address = 0xe000_0000;
        let err = PciConfiguration::restore(space(), &state).unwrap_err();
        assert!(err.to_string().contains("BAR 0 at 0xe0000000"), "{err}");

        let mut state = space().save();
        state.bars.clear();
        assert!(PciConfiguration::restore(space(), &state).is_err());
        let mut state = space().save();
        state.bytes.pop();
        assert!(PciConfiguration::restore(space(), &state).is_err());
    }

    #[test]
    fn the_root_keeps_its_config_address_and_host_bridge() {
        let mut root = PciRoot::new();
        root.write(0, &0x8000_0004u32.to_le_bytes());
        root.write(4, &[0x06]); // host bridge command
        let state = root.save();
        let mut again = PciRoot::new();
        again.restore_state(&state).unwrap();
        assert_eq!(again.save(), state);
        let mut data = [0u8; 4];
        again.read(0, &mut data);
        assert_eq!(u32::from_le_bytes(data), 0x8000_0004);
        again.read(4, &mut data);
        assert_eq!(data[0], 0x06);

        let bad = PciRootState {
            config_address: 0x7000_0000,
            ..state
        };
        assert!(PciRoot::new().restore_state(&bad).is_err());
    }
}
