//! The 256-byte configuration space of a type-0 (endpoint) function: the
//! header, its BARs and a capability list, with per-bit masks saying what
//! the guest may change.

use super::bar::{Half, MemoryBar};
use super::consts::{
    PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY,
    PCI_CONFIG_SPACE_SIZE, PCI_NUM_BARS, PCI_STATUS_CAP_LIST,
};
use super::PciError;

const VENDOR_ID: usize = 0x00;
const DEVICE_ID: usize = 0x02;
const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
const REVISION: usize = 0x08;
const PROG_IF: usize = 0x09;
const SUBCLASS: usize = 0x0a;
const CLASS_CODE: usize = 0x0b;
const HEADER_TYPE: usize = 0x0e;
const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
const SUBSYSTEM_ID: usize = 0x2e;
const CAPABILITIES_POINTER: usize = 0x34;
const INTERRUPT_LINE: usize = 0x3c;
/// First dword register of the BARs (offset 0x10).
const BAR0_REG: usize = 4;
/// Where capabilities start: right after the 64-byte header.
const CAPABILITIES_START: usize = 0x40;
const NUM_REGS: usize = PCI_CONFIG_SPACE_SIZE / 4;
/// The memory BAR sizes the guest can map: at least one page.
const MIN_BAR_SIZE: u64 = 4096;

/// The identity a function shows in its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciHeader {
    pub vendor_id: u16,
    pub device_id: u16,
    pub revision: u8,
    pub class_code: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub subsystem_vendor_id: u16,
    pub subsystem_id: u16,
}

/// What a BAR slot holds.
#[derive(Clone, Copy, Debug)]
pub(super) enum BarSlot {
    /// Reads 0 and ignores writes: sizing reads 0, so the guest sees no BAR.
    Unused,
    /// The low dword of a 64-bit BAR; the next slot is its `High`.
    Low(MemoryBar),
    High,
}

/// A type-0 configuration space. The guest's view of it goes through
/// [`read_register`](Self::read_register) and
/// [`write_register`](Self::write_register).
#[derive(Clone, Debug)]
pub struct PciConfiguration {
    pub(super) bytes: [u8; PCI_CONFIG_SPACE_SIZE],
    /// Bits the guest may change, byte for byte over `bytes`. BARs do not
    /// use it: they follow their own protocol.
    pub(super) writable: [u8; PCI_CONFIG_SPACE_SIZE],
    pub(super) bars: [BarSlot; PCI_NUM_BARS],
    /// Offset of the last capability added, whose next pointer links a new one.
    last_capability: Option<usize>,
    /// Where the next capability goes.
    next_capability: usize,
}

impl PciConfiguration {
    /// A header with no BARs and no capabilities: header type 0, no
    /// interrupt pin (MSI-X only) and interrupt line 0xff ("not connected").
    pub fn new(header: &PciHeader) -> Self {
        let mut config = PciConfiguration {
            bytes: [0; PCI_CONFIG_SPACE_SIZE],
            writable: [0; PCI_CONFIG_SPACE_SIZE],
            bars: [BarSlot::Unused; PCI_NUM_BARS],
            last_capability: None,
            next_capability: CAPABILITIES_START,
        };
        config.put_u16(VENDOR_ID, header.vendor_id);
        config.put_u16(DEVICE_ID, header.device_id);
        config.bytes[REVISION] = header.revision;
        config.bytes[PROG_IF] = header.prog_if;
        config.bytes[SUBCLASS] = header.subclass;
        config.bytes[CLASS_CODE] = header.class_code;
        config.bytes[HEADER_TYPE] = 0;
        config.put_u16(SUBSYSTEM_VENDOR_ID, header.subsystem_vendor_id);
        config.put_u16(SUBSYSTEM_ID, header.subsystem_id);
        config.bytes[INTERRUPT_LINE] = 0xff;
        let command_mask =
            PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
        config.writable[COMMAND..COMMAND + 2].copy_from_slice(&command_mask.to_le_bytes());
        config
    }

    /// Places a 64-bit non-prefetchable memory BAR in slots `index` and
    /// `index + 1`, at an address the guest cannot change.
    pub fn add_memory_bar(&mut self, index: usize, addr: u64, size: u64) -> Result<(), PciError> {
        let high = index
            .checked_add(1)
            .filter(|&high| high < PCI_NUM_BARS)
            .ok_or(PciError::BarIndex { index })?;
        if !size.is_power_of_two() || size < MIN_BAR_SIZE {
            return Err(PciError::BarSize { size });
        }
        if addr & (size - 1) != 0 || addr.checked_add(size).is_none() {
            return Err(PciError::BarAddress { addr, size });
        }
        let free = |slot: &BarSlot| matches!(slot, BarSlot::Unused);
        if !free(&self.bars[index]) || !free(&self.bars[high]) {
            return Err(PciError::BarInUse { index });
        }
        self.bars[index] = BarSlot::Low(MemoryBar::new(addr, size));
        self.bars[high] = BarSlot::High;
        Ok(())
    }

    /// The address of the BAR whose low dword is slot `index`.
    pub fn bar_address(&self, index: usize) -> Option<u64> {
        self.memory_bar(index).map(|bar| bar.addr)
    }

    /// The size of the BAR whose low dword is slot `index`.
    pub fn bar_size(&self, index: usize) -> Option<u64> {
        self.memory_bar(index).map(|bar| bar.size)
    }

    fn memory_bar(&self, index: usize) -> Option<&MemoryBar> {
        match self.bars.get(index) {
            Some(BarSlot::Low(bar)) => Some(bar),
            _ => None,
        }
    }

    /// Appends a capability: its id, a next pointer, then `body` (all that
    /// follows the 2-byte header). Capabilities are dword aligned and
    /// chained in the order they are added. Returns the capability's offset.
    pub fn add_capability(&mut self, id: u8, body: &[u8]) -> Result<u8, PciError> {
        let start = self.next_capability;
        let space = PciError::CapabilitySpace {
            id,
            len: body.len(),
        };
        let end = body
            .len()
            .checked_add(start + 2)
            .filter(|&end| end <= PCI_CONFIG_SPACE_SIZE)
            .ok_or_else(|| space.clone())?;
        let pointer = u8::try_from(start).map_err(|_| space)?;
        self.bytes[start] = id;
        self.bytes[start + 1] = 0;
        self.bytes[start + 2..end].copy_from_slice(body);
        let link = match self.last_capability {
            Some(last) => last + 1,
            None => CAPABILITIES_POINTER,
        };
        self.bytes[link] = pointer;
        let status = self.get_u16(STATUS) | PCI_STATUS_CAP_LIST;
        self.put_u16(STATUS, status);
        self.last_capability = Some(start);
        self.next_capability = end.next_multiple_of(4);
        Ok(pointer)
    }

    /// Lets the guest change the bits set in `mask` in the bytes from
    /// `offset` on. Only the capability area can be made writable: the
    /// header's registers have fixed meanings handled here.
    pub fn set_writable(&mut self, offset: u8, mask: &[u8]) -> Result<(), PciError> {
        let range = capability_range(usize::from(offset), mask.len())?;
        for (writable, bits) in self.writable[range].iter_mut().zip(mask) {
            *writable |= bits;
        }
        Ok(())
    }

    /// The guest's view of dword register `reg`; all-ones past the end, as
    /// a read of a missing register returns on real hardware.
    pub fn read_register(&self, reg: usize) -> u32 {
        if reg >= NUM_REGS {
            return u32::MAX;
        }
        if let Some(index) = bar_index(reg) {
            return match self.bars.get(index) {
                Some(BarSlot::Low(bar)) => bar.read(Half::Low),
                Some(BarSlot::High) => self
                    .memory_bar(index.wrapping_sub(1))
                    .map_or(0, |bar| bar.read(Half::High)),
                Some(BarSlot::Unused) | None => 0,
            };
        }
        let at = reg * 4;
        match self.bytes.get(at..at + 4) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => u32::MAX,
        }
    }

    /// A guest write of `data` at byte `offset` of dword register `reg`.
    /// Only bits marked writable change; accesses that are not 1, 2 or 4
    /// bytes wide or that cross the dword are dropped.
    pub fn write_register(&mut self, reg: usize, offset: u64, data: &[u8]) {
        let Some(start) = dword_access(reg, offset, data.len()) else {
            return;
        };
        if let Some(index) = bar_index(reg) {
            self.write_bar(index, start % 4, data);
            return;
        }
        let range = start..start + data.len();
        for ((byte, &mask), &value) in self.bytes[range.clone()]
            .iter_mut()
            .zip(&self.writable[range])
            .zip(data)
        {
            *byte = (*byte & !mask) | (value & mask);
        }
    }

    /// Reads raw bytes as the guest would see them, for a device that
    /// needs the values the guest wrote into its capabilities.
    pub fn read_bytes(&self, offset: usize, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = offset
                .checked_add(i)
                .map_or(0xff, |at| self.register_byte(at));
        }
    }

    /// Writes capability bytes from the device side, ignoring the guest's
    /// writable masks (for example a value the device makes the guest read).
    pub fn write_bytes(&mut self, offset: usize, data: &[u8]) -> Result<(), PciError> {
        let range = capability_range(offset, data.len())?;
        self.bytes[range].copy_from_slice(data);
        Ok(())
    }

    /// The command register, for the device to see what the guest enabled.
    pub fn command(&self) -> u16 {
        self.get_u16(COMMAND)
    }

    fn register_byte(&self, at: usize) -> u8 {
        let dword = self.read_register(at / 4).to_le_bytes();
        dword[at % 4]
    }

    fn write_bar(&mut self, index: usize, byte: usize, data: &[u8]) {
        let (low, half) = match self.bars.get(index) {
            Some(BarSlot::Low(_)) => (index, Half::Low),
            Some(BarSlot::High) => (index.wrapping_sub(1), Half::High),
            Some(BarSlot::Unused) | None => return,
        };
        // A narrow write changes only its bytes: merge it into what the
        // register reads now, then treat the dword as the write.
        let mut dword = self.read_register(BAR0_REG + index).to_le_bytes();
        let Some(target) = dword.get_mut(byte..byte + data.len()) else {
            return;
        };
        target.copy_from_slice(data);
        if let Some(BarSlot::Low(bar)) = self.bars.get_mut(low) {
            bar.write(half, u32::from_le_bytes(dword));
        }
    }

    fn get_u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    fn put_u16(&mut self, at: usize, value: u16) {
        self.bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }
}

/// The byte offset of a guest access of `len` bytes at byte `offset` of
/// register `reg`, if it is one a PCI bus can carry.
fn dword_access(reg: usize, offset: u64, len: usize) -> Option<usize> {
    let offset = usize::try_from(offset).ok().filter(|&offset| offset < 4)?;
    let fits = matches!(len, 1 | 2 | 4) && offset + len <= 4 && reg < NUM_REGS;
    fits.then(|| reg * 4 + offset)
}

/// The BAR slot register `reg` holds, if it is one of the six.
fn bar_index(reg: usize) -> Option<usize> {
    reg.checked_sub(BAR0_REG)
        .filter(|&index| index < PCI_NUM_BARS)
}

/// `offset..offset + len`, if it lies inside the capability area.
fn capability_range(offset: usize, len: usize) -> Result<std::ops::Range<usize>, PciError> {
    let outside = PciError::OutsideCapabilities { offset, len };
    let end = offset.checked_add(len).ok_or_else(|| outside.clone())?;
    if offset < CAPABILITIES_START || end > PCI_CONFIG_SPACE_SIZE {
        return Err(outside);
    }
    Ok(offset..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::consts::{PCI_CAP_ID_MSIX, PCI_CAP_ID_VENDOR};

    fn header() -> PciHeader {
        PciHeader {
            vendor_id: 0x1af4,
            device_id: 0x1042,
            revision: 1,
            class_code: 0x01,
            subclass: 0x00,
            prog_if: 0,
            subsystem_vendor_id: 0x1af4,
            subsystem_id: 0x0040,
        }
    }

    #[test]
    fn header_reports_identity_type_0_and_no_interrupt_pin() {
        let config = PciConfiguration::new(&header());
        assert_eq!(config.read_register(0), 0x1042_1af4);
        assert_eq!(config.read_register(1), 0);
        assert_eq!(config.read_register(2), 0x0100_0001);
        assert_eq!(config.read_register(3), 0);
        assert_eq!(config.read_register(11), 0x0040_1af4);
        assert_eq!(config.read_register(13), 0);
        assert_eq!(config.read_register(15), 0x0000_00ff);
    }

    #[test]
    fn only_the_command_bits_are_writable_in_the_header() {
        let mut config = PciConfiguration::new(&header());
        for reg in 0..16 {
            config.write_register(reg, 0, &[0xff; 4]);
        }
        assert_eq!(config.read_register(0), 0x1042_1af4);
        assert_eq!(config.read_register(1), 0x0000_0407);
        assert_eq!(config.command(), 0x0407);
        assert_eq!(config.read_register(15), 0x0000_00ff);
        config.write_register(1, 1, &[0]);
        assert_eq!(config.command(), 0x0007);
        config.write_register(1, 0, &[0x02, 0x00]);
        assert_eq!(config.command(), 0x0002);
    }

    /// What Linux's `__pci_read_base` does for a 64-bit memory BAR.
    fn linux_size_bar(config: &mut PciConfiguration, reg: usize) -> (u32, u32, u32, u32) {
        let low = config.read_register(reg);
        config.write_register(reg, 0, &u32::MAX.to_le_bytes());
        let low_size = config.read_register(reg);
        config.write_register(reg, 0, &low.to_le_bytes());
        let high = config.read_register(reg + 1);
        config.write_register(reg + 1, 0, &u32::MAX.to_le_bytes());
        let high_size = config.read_register(reg + 1);
        config.write_register(reg + 1, 0, &high.to_le_bytes());
        (low, low_size, high, high_size)
    }

    #[test]
    fn bar_sizing_follows_the_linux_sequence() {
        let mut config = PciConfiguration::new(&header());
        config.add_memory_bar(0, 0x1_c000_0000, 0x8_0000).unwrap();
        config.add_memory_bar(2, 0xd000_0000, 0x1000).unwrap();
        assert_eq!(
            linux_size_bar(&mut config, 4),
            (0xc000_0004, 0xfff8_0004, 0x1, 0xffff_ffff)
        );
        assert_eq!(
            linux_size_bar(&mut config, 6),
            (0xd000_0004, 0xffff_f004, 0, 0xffff_ffff)
        );
        assert_eq!(config.read_register(4), 0xc000_0004);
        assert_eq!(config.read_register(5), 0x1);
        assert_eq!(config.read_register(6), 0xd000_0004);
        assert_eq!(config.bar_address(0), Some(0x1_c000_0000));
        assert_eq!(config.bar_size(0), Some(0x8_0000));
        assert_eq!(config.bar_address(2), Some(0xd000_0000));
        assert_eq!(config.bar_size(2), Some(0x1000));
        assert_eq!(config.bar_address(1), None);
        assert_eq!(config.bar_size(5), None);
        assert_eq!(config.bar_size(usize::MAX), None);
    }

    #[test]
    fn fixed_bars_ignore_writes_that_would_move_them() {
        let mut config = PciConfiguration::new(&header());
        config.add_memory_bar(4, 0x2_0000_0000, 0x10_0000).unwrap();
        for value in [0u32, 0x1234_5678, 0xffff_fffe, 0x8000_0000] {
            config.write_register(8, 0, &value.to_le_bytes());
            config.write_register(9, 0, &value.to_le_bytes());
        }
        config.write_register(8, 3, &[0x7f]);
        config.write_register(9, 0, &[0x00, 0x00]);
        assert_eq!(config.read_register(8), 0x0000_0004);
        assert_eq!(config.read_register(9), 0x2);
        // A write while sizing ends sizing rather than moving the BAR.
        config.write_register(8, 0, &u32::MAX.to_le_bytes());
        config.write_register(8, 0, &0x5000_0000u32.to_le_bytes());
        assert_eq!(config.read_register(8), 0x0000_0004);
        assert_eq!(config.bar_address(4), Some(0x2_0000_0000));
    }

    #[test]
    fn unused_bar_slots_size_to_zero() {
        let mut config = PciConfiguration::new(&header());
        config.add_memory_bar(2, 0x1_0000, 0x1_0000).unwrap();
        for reg in [4, 5, 8, 9] {
            config.write_register(reg, 0, &u32::MAX.to_le_bytes());
            assert_eq!(config.read_register(reg), 0);
        }
        config.write_register(12, 0, &u32::MAX.to_le_bytes());
        assert_eq!(config.read_register(12), 0, "no expansion ROM");
    }

    #[test]
    fn bad_bars_are_refused() {
        let mut config = PciConfiguration::new(&header());
        assert_eq!(
            config.add_memory_bar(5, 0, 0x1000),
            Err(PciError::BarIndex { index: 5 })
        );
        assert_eq!(
            config.add_memory_bar(usize::MAX, 0, 0x1000),
            Err(PciError::BarIndex { index: usize::MAX })
        );
        for size in [0, 0x800, 0x3000] {
            assert_eq!(
                config.add_memory_bar(0, 0, size),
                Err(PciError::BarSize { size })
            );
        }
        assert_eq!(
            config.add_memory_bar(0, 0x1800, 0x1000),
            Err(PciError::BarAddress {
                addr: 0x1800,
                size: 0x1000
            })
        );
        assert_eq!(
            config.add_memory_bar(0, 1 << 63, 1 << 63),
            Err(PciError::BarAddress {
                addr: 1 << 63,
                size: 1 << 63
            })
        );
        config.add_memory_bar(1, 0x1000, 0x1000).unwrap();
        assert_eq!(
            config.add_memory_bar(0, 0x1000, 0x1000),
            Err(PciError::BarInUse { index: 0 })
        );
        assert_eq!(
            config.add_memory_bar(2, 0x1000, 0x1000),
            Err(PciError::BarInUse { index: 2 })
        );
        config.add_memory_bar(3, 0x1000, 0x1000).unwrap();
    }

    #[test]
    fn capabilities_chain_in_order_dword_aligned() {
        let mut config = PciConfiguration::new(&header());
        assert_eq!(config.read_register(1) >> 16, 0);
        let msix = config
            .add_capability(
                PCI_CAP_ID_MSIX,
                &[0x03, 0x00, 0x01, 0, 0, 0, 0x01, 0x08, 0, 0],
            )
            .unwrap();
        let vendor = config.add_capability(PCI_CAP_ID_VENDOR, &[3]).unwrap();
        let last = config.add_capability(PCI_CAP_ID_VENDOR, &[]).unwrap();
        assert_eq!((msix, vendor, last), (0x40, 0x4c, 0x50));
        assert_eq!(
            u16::try_from(config.read_register(1) >> 16).unwrap(),
            PCI_STATUS_CAP_LIST
        );
        assert_eq!(config.read_register(0x34 / 4), 0x40);
        assert_eq!(config.read_register(0x40 / 4), 0x0003_4c11);
        assert_eq!(config.read_register(0x4c / 4), 0x0003_5009);
        assert_eq!(config.read_register(0x50 / 4), 0x0000_0009);
    }

    #[test]
    fn capabilities_must_fit_in_the_space() {
        let mut config = PciConfiguration::new(&header());
        assert_eq!(
            config.add_capability(PCI_CAP_ID_VENDOR, &[0; 191]),
            Err(PciError::CapabilitySpace {
                id: PCI_CAP_ID_VENDOR,
                len: 191
            })
        );
        assert_eq!(
            config.add_capability(PCI_CAP_ID_VENDOR, &[0; 186]),
            Ok(0x40)
        );
        // 0x40 + 188 = 0xfc: one dword left, for a 2-byte body at most.
        assert!(config.add_capability(PCI_CAP_ID_VENDOR, &[0; 3]).is_err());
        assert_eq!(config.add_capability(PCI_CAP_ID_VENDOR, &[7, 7]), Ok(0xfc));
        assert!(config.add_capability(PCI_CAP_ID_VENDOR, &[]).is_err());
        assert_eq!(config.read_register(0x40 / 4) & 0xffff, 0xfc09);
        assert_eq!(config.read_register(63), 0x0707_0009);
    }

    #[test]
    fn writable_masks_let_only_their_bits_through() {
        let mut config = PciConfiguration::new(&header());
        let cap = config
            .add_capability(PCI_CAP_ID_MSIX, &[0x03, 0x00, 0, 0])
            .unwrap();
        // MSI-X Message Control: enable (bit 15) and function mask (bit 14).
        config.set_writable(cap + 2, &[0x00, 0xc0]).unwrap();
        config.write_register(0x40 / 4, 0, &[0xff; 4]);
        assert_eq!(config.read_register(0x40 / 4), 0xc003_0011);
        config.write_register(0x40 / 4, 3, &[0x00]);
        assert_eq!(config.read_register(0x40 / 4), 0x0003_0011);
        config.write_register(0x44 / 4, 0, &[0xff; 4]);
        assert_eq!(config.read_register(0x44 / 4), 0);
        assert_eq!(
            config.set_writable(0x3c, &[0xff]),
            Err(PciError::OutsideCapabilities {
                offset: 0x3c,
                len: 1
            })
        );
        assert!(config.set_writable(0xff, &[0xff, 0xff]).is_err());
        config.set_writable(0xff, &[0xff]).unwrap();
    }

    #[test]
    fn malformed_accesses_are_dropped() {
        let mut config = PciConfiguration::new(&header());
        let cap = config.add_capability(PCI_CAP_ID_VENDOR, &[0; 6]).unwrap();
        config.set_writable(cap, &[0xff; 8]).unwrap();
        let reg = usize::from(cap) / 4;
        for (offset, len) in [(0, 0), (0, 3), (0, 8), (1, 4), (3, 2), (2, 4), (4, 1)] {
            config.write_register(reg, offset, &[0xaa; 8][..len]);
        }
        config.write_register(reg, u64::MAX, &[0xaa]);
        config.write_register(64, 0, &[0xaa; 4]);
        config.write_register(usize::MAX, 0, &[0xaa; 4]);
        config.write_register(4, u64::MAX, &[0xaa]);
        config.write_register(4, 3, &[0xaa; 2]);
        assert_eq!(config.read_register(reg), 0x0000_0009);
        assert_eq!(config.read_register(64), u32::MAX);
        assert_eq!(config.read_register(usize::MAX), u32::MAX);
        config.write_register(reg, 1, &[0xaa, 0xbb]);
        config.write_register(reg, 3, &[0xcc]);
        assert_eq!(config.read_register(reg), 0xccbb_aa09);
    }

    #[test]
    fn device_side_bytes_bypass_the_guest_masks() {
        let mut config = PciConfiguration::new(&header());
        config.add_memory_bar(0, 0x8000_0000, 0x4000).unwrap();
        config.add_capability(PCI_CAP_ID_VENDOR, &[0; 6]).unwrap();
        config.write_bytes(0x44, &[1, 2, 3, 4]).unwrap();
        assert!(config.write_bytes(0x10, &[0]).is_err());
        assert!(config.write_bytes(0xfe, &[0; 3]).is_err());
        assert!(config.write_bytes(usize::MAX, &[0; 3]).is_err());
        let mut out = [0u8; 6];
        config.read_bytes(0x42, &mut out);
        assert_eq!(out, [0, 0, 1, 2, 3, 4]);
        let mut bar = [0u8; 4];
        config.read_bytes(0x10, &mut bar);
        assert_eq!(u32::from_le_bytes(bar), 0x8000_0004);
        let mut past = [0u8; 3];
        config.read_bytes(0xff, &mut past);
        assert_eq!(past, [0, 0xff, 0xff]);
        config.read_bytes(usize::MAX, &mut past);
        assert_eq!(past, [0xff; 3]);
    }
}
