//! A 64-bit memory BAR at an address the VMM chose, with the all-ones
//! sizing protocol the guest uses to learn its size.
//!
//! The BAR cannot be moved by the guest: the VMM registers the device's
//! MMIO bus range and its ioeventfds at this address, and moving them is
//! future work. A write of anything but all-ones therefore only ends
//! sizing, and the BAR goes on reading its fixed address (a write of the
//! original value, as Linux does after sizing, is the common case).

/// Type bits of a 64-bit, non-prefetchable memory BAR (bits 2:1 = 0b10).
const MEM_64_FLAGS: u32 = 0b100;
/// Low BAR bits that hold flags, not address.
const FLAG_BITS: u32 = 0xf;

/// Which dword of the 64-bit BAR an access hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Half {
    Low,
    High,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct MemoryBar {
    pub(crate) addr: u64,
    pub(crate) size: u64,
    /// Per half: the guest wrote all-ones and reads the size mask next.
    sizing: [bool; 2],
}

impl MemoryBar {
    /// `size` must be a power of two; the caller checks it and the
    /// alignment of `addr`.
    pub(crate) fn new(addr: u64, size: u64) -> Self {
        MemoryBar {
            addr,
            size,
            sizing: [false; 2],
        }
    }

    pub(crate) fn read(&self, half: Half) -> u32 {
        let value = if self.sizing[half as usize] {
            !(self.size - 1)
        } else {
            self.addr
        };
        match half {
            Half::Low => (low_dword(value) & !FLAG_BITS) | MEM_64_FLAGS,
            Half::High => low_dword(value >> 32),
        }
    }

    pub(crate) fn write(&mut self, half: Half, value: u32) {
        self.sizing[half as usize] = value == u32::MAX;
    }

    /// Per half (low, high): whether the guest is sizing it, for snapshots.
    pub(crate) fn sizing(&self) -> [bool; 2] {
        self.sizing
    }

    pub(crate) fn set_sizing(&mut self, sizing: [bool; 2]) {
        self.sizing = sizing;
    }
}

fn low_dword(value: u64) -> u32 {
    // The mask makes the conversion lossless.
    u32::try_from(value & 0xffff_ffff).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_reads_the_mask_per_half_then_the_address_again() {
        let mut bar = MemoryBar::new(0x1_2345_0000, 0x1_0000);
        assert_eq!(bar.read(Half::Low), 0x2345_0004);
        assert_eq!(bar.read(Half::High), 0x1);
        bar.write(Half::Low, u32::MAX);
        assert_eq!(bar.read(Half::Low), 0xffff_0004);
        assert_eq!(bar.read(Half::High), 0x1);
        bar.write(Half::Low, 0x2345_0004);
        bar.write(Half::High, u32::MAX);
        assert_eq!(bar.read(Half::High), u32::MAX);
        bar.write(Half::High, 0x1);
        assert_eq!(bar.read(Half::High), 0x1);
    }

    #[test]
    fn bars_of_4_gib_and_more_have_their_mask_in_the_high_half() {
        let mut bar = MemoryBar::new(0x4_0000_0000, 0x2_0000_0000);
        bar.write(Half::Low, u32::MAX);
        bar.write(Half::High, u32::MAX);
        assert_eq!(bar.read(Half::Low), 0x4);
        assert_eq!(bar.read(Half::High), 0xffff_fffe);
    }
}
