//! Identity-mapped page tables for kernels entered in 64-bit mode.

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::layout::{PDE_START, PDPTE_START, PML4_START};
use crate::{Error, Result};

const PRESENT_WRITABLE: u64 = 0x3;
const HUGE_PAGE: u64 = 0x80;
/// Page directories written: each maps 1 GiB with 2 MiB pages.
const PAGE_DIRECTORIES: u64 = 4;

/// Writes page tables that map the first 4 GiB 1:1 with 2 MiB pages (so the
/// LAPIC and IOAPIC are reachable too), and returns the value for CR3.
pub fn write_identity_map<M: GuestMemory>(mem: &M) -> Result<u64> {
    let err = |addr| Error::GuestWrite {
        what: "boot page tables",
        addr,
    };
    mem.write_obj(PDPTE_START | PRESENT_WRITABLE, GuestAddress(PML4_START))
        .map_err(|_| err(PML4_START))?;
    for dir in 0..PAGE_DIRECTORIES {
        let pd = PDE_START + dir * 0x1000;
        mem.write_obj(pd | PRESENT_WRITABLE, GuestAddress(PDPTE_START + dir * 8))
            .map_err(|_| err(PDPTE_START))?;
        let mut entries = [0u8; 4096];
        for (i, entry) in entries.chunks_exact_mut(8).enumerate() {
            let page = ((dir << 9) + i as u64) << 21;
            entry.copy_from_slice(&(page | PRESENT_WRITABLE | HUGE_PAGE).to_le_bytes());
        }
        mem.write_slice(&entries, GuestAddress(pd))
            .map_err(|_| err(pd))?;
    }
    Ok(PML4_START)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    #[test]
    fn maps_4g_identity() {
        let mem: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        assert_eq!(write_identity_map(&mem).unwrap(), PML4_START);
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_START)).unwrap();
        assert_eq!(pml4, PDPTE_START | 3);
        let pdpt3: u64 = mem.read_obj(GuestAddress(PDPTE_START + 24)).unwrap();
        assert_eq!(pdpt3, (PDE_START + 0x3000) | 3);
        // The last 2 MiB page of the last directory maps 4 GiB - 2 MiB.
        let last: u64 = mem.read_obj(GuestAddress(PDE_START + 0x3ff8)).unwrap();
        assert_eq!(last, ((4u64 << 30) - (2 << 20)) | 0x83);
    }

    #[test]
    fn fails_cleanly_without_memory_there() {
        let mem: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        assert!(write_identity_map(&mem).is_err());
    }
}
