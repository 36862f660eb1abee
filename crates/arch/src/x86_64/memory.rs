//! Where RAM goes for a given memory size, and the e820 map that says so.

use vm_memory::GuestAddress;

use crate::layout::{EBDA_START, FIRST_ADDR_PAST_32BITS, HIMEM_START, MEM_32BIT_GAP_START};

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;

/// One entry of the guest's physical memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryMapEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// The host-backed RAM regions for `size` bytes of guest memory: everything
/// below the 32-bit device hole, and the rest above 4 GiB.
pub fn ram_regions(size: u64) -> Vec<(GuestAddress, u64)> {
    let low = size.min(MEM_32BIT_GAP_START);
    let mut regions = vec![(GuestAddress(0), low)];
    if size > low {
        regions.push((GuestAddress(FIRST_ADDR_PAST_32BITS), size - low));
    }
    regions
}

/// The highest guest-physical address plus one, for `size` bytes of RAM.
pub fn guest_phys_end(size: u64) -> u64 {
    ram_regions(size)
        .last()
        .map_or(0, |(start, len)| start.0 + len)
}

/// The memory map the guest is told about: RAM below the EBDA, RAM from
/// 1 MiB up to the hole (or the end of memory), and RAM above 4 GiB. The
/// BIOS area between the EBDA and 1 MiB holds the MP and ACPI tables and is
/// left out, so the guest never uses it as RAM.
pub fn memory_map(size: u64) -> Vec<MemoryMapEntry> {
    let mut map = Vec::with_capacity(3);
    let ram = |addr, size| MemoryMapEntry {
        addr,
        size,
        kind: E820_RAM,
    };
    map.push(ram(0, size.min(EBDA_START)));
    let low_end = size.min(MEM_32BIT_GAP_START);
    if low_end > HIMEM_START {
        map.push(ram(HIMEM_START, low_end - HIMEM_START));
    }
    if size > MEM_32BIT_GAP_START {
        map.push(ram(FIRST_ADDR_PAST_32BITS, size - MEM_32BIT_GAP_START));
    }
    map
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn small_guest_has_one_region_and_two_map_entries() {
        assert_eq!(ram_regions(128 * MIB), vec![(GuestAddress(0), 128 * MIB)]);
        let map = memory_map(128 * MIB);
        assert_eq!(map.len(), 2);
        assert_eq!(map[0].size, EBDA_START);
        assert_eq!(map[1].addr, HIMEM_START);
        assert_eq!(map[1].addr + map[1].size, 128 * MIB);
    }

    #[test]
    fn large_guest_moves_ram_above_4g() {
        let regions = ram_regions(5 * GIB);
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0].1, 3 * GIB);
        assert_eq!(regions[1], (GuestAddress(4 * GIB), 2 * GIB));
        assert_eq!(guest_phys_end(5 * GIB), 6 * GIB);
        let map = memory_map(5 * GIB);
        let ram: u64 = map.iter().map(|e| e.size).sum();
        // Only the BIOS area between the EBDA and 1 MiB is not RAM.
        assert_eq!(ram, 5 * GIB - (HIMEM_START - EBDA_START));
        assert_eq!(map[2].addr, 4 * GIB);
    }

    #[test]
    fn exactly_the_hole_start_needs_no_high_region() {
        assert_eq!(ram_regions(3 * GIB).len(), 1);
        assert_eq!(memory_map(3 * GIB).len(), 2);
    }
}
