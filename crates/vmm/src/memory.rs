//! Guest RAM: host mappings and their KVM memory slots.

use std::fs::File;

use arch::x86_64::memory::ram_regions;
use hypervisor::{Hypervisor, MemorySlot, Vm};
use vm_memory::bitmap::AtomicBitmap;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

use crate::ram_mapping::RamMapping;
use crate::{Error, HugePages, Result};

/// Guest RAM, each region with a dirty bitmap (one bit per 4 KiB page)
/// that every write through `vm-memory` marks: how a Diff snapshot learns
/// the pages the VMM itself wrote (disk reads, received frames, used
/// rings, the VM generation ID), which KVM's dirty log, made of the
/// guest's own writes, does not hold. Always there, tracking or not (as
/// `virtio::GuestMemoryMmap` and `boot::GuestMemoryMmap`, the same type):
/// it costs 4 KiB per 128 MiB of RAM and an atomic OR per page written,
/// and one memory type spares every device a generic parameter; KVM's
/// log, which costs the guest a fault per page it first writes after each
/// snapshot, is what `track_dirty_pages` turns on.
pub(crate) type GuestMemoryMmap = vm_memory::GuestMemoryMmap<AtomicBitmap>;

/// Guest physical address width when KVM does not report one.
const DEFAULT_PHYS_BITS: u32 = 36;

/// The guest physical address width KVM offers (CPUID 0x80000008 EAX[7:0]).
pub(crate) fn guest_phys_bits(hypervisor: &Hypervisor) -> u32 {
    hypervisor
        .supported_cpuid()
        .ok()
        .and_then(|cpuid| {
            cpuid
                .as_slice()
                .iter()
                .find(|e| e.function == 0x8000_0008)
                .map(|e| e.eax & 0xff)
        })
        .filter(|&bits| (32..=52).contains(&bits))
        .unwrap_or(DEFAULT_PHYS_BITS)
}

/// Guest RAM: the regions `vm-memory` works with, over host mappings that
/// this owns. Field order is drop order: every region before its mapping.
pub(crate) struct GuestRam {
    pub memory: GuestMemoryMmap,
    _mappings: Vec<RamMapping>,
}

impl GuestRam {
    /// Marks every page dirty for the next Diff snapshot: this RAM
    /// replaced the RAM the last snapshot saved (a guest reset boots on
    /// fresh RAM), so any page may differ from that snapshot's, zeros
    /// included.
    pub(crate) fn mark_all_dirty(&self) {
        for region in self.memory.iter() {
            let bitmap = std::ops::Deref::deref(region).bitmap();
            bitmap.set_addr_range(0, bitmap.byte_size());
        }
    }
}

/// Allocates `size` bytes of guest RAM, laid out around the 32-bit hole,
/// each region on a 2 MiB boundary with `huge_pages`' advice. The mappings
/// are lazily backed: untouched guest pages cost nothing.
pub(crate) fn create_guest_memory(size: u64, huge_pages: HugePages) -> Result<GuestRam> {
    lay_out(size, huge_pages, |_, len, advice| {
        RamMapping::new(len, advice)
    })
}

/// Guest RAM of `size` bytes over `file` (a snapshot's memory file: the
/// regions one after the other), mapped private and copy-on-write, so a
/// restored guest reads only the pages it touches and clones of one
/// snapshot share its page cache.
pub(crate) fn map_memory_file(file: &File, size: u64, huge_pages: HugePages) -> Result<GuestRam> {
    lay_out(size, huge_pages, |offset, len, advice| {
        RamMapping::from_file(file, offset, len, advice)
    })
}

/// The regions of `size` bytes of RAM, each mapped by `map(offset, len,
/// advice)`, where `offset` is the region's place in the RAM as a whole.
fn lay_out(
    size: u64,
    huge_pages: HugePages,
    map: impl Fn(u64, usize, Option<libc::c_int>) -> std::io::Result<RamMapping>,
) -> Result<GuestRam> {
    let too_large = |reason: String| Error::GuestMemory { size, reason };
    let advice = match huge_pages {
        HugePages::HostPolicy => None,
        HugePages::On => Some(libc::MADV_HUGEPAGE),
        HugePages::Off => Some(libc::MADV_NOHUGEPAGE),
    };
    let mut mappings = Vec::new();
    let mut regions = Vec::new();
    let mut offset = 0u64;
    for (addr, len) in ram_regions(size) {
        let bytes = usize::try_from(len)
            .map_err(|_| too_large("larger than the host address space".into()))?;
        let mapping = map(offset, bytes, advice).map_err(|e| too_large(e.to_string()))?;
        offset += len;
        // SAFETY: the region goes into `GuestRam::memory`, which drops
        // before `GuestRam::_mappings`; clones of the memory handed to
        // devices and vCPUs go with the machine, which drops before its RAM.
        let region = unsafe { mapping.region(addr) }.map_err(|e| too_large(e.to_string()))?;
        mappings.push(mapping);
        regions.push(region);
    }
    let memory = GuestMemoryMmap::from_regions(regions).map_err(|e| too_large(e.to_string()))?;
    Ok(GuestRam {
        memory,
        _mappings: mappings,
    })
}

/// Gives every RAM region to the VM as a memory slot (slot N is region
/// N), KVM logging the guest's writes to them if `log_dirty_pages`.
pub(crate) fn map_guest_memory(
    vm: &Vm,
    memory: &GuestMemoryMmap,
    log_dirty_pages: bool,
) -> Result<()> {
    for (slot, region) in (0u32..).zip(memory.iter()) {
        let host = region
            .get_host_address(MemoryRegionAddress(0))
            .map_err(|e| Error::GuestMemory {
                size: region.len(),
                reason: e.to_string(),
            })?;
        let slot = MemorySlot {
            slot,
            guest_addr: region.start_addr().0,
            size: region.len(),
            host_addr: host as u64,
            log_dirty_pages,
        };
        // SAFETY: the region is a live mapping owned by `memory`, which the
        // machine keeps until after the VM (and its vCPUs) are gone.
        unsafe { vm.map_memory(slot)? };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ram_mapping::HUGE_PAGE;

    #[test]
    fn every_region_starts_on_a_huge_page_boundary() {
        // 5 GiB: RAM below the 32-bit hole and above 4 GiB, two regions.
        for advice in [HugePages::HostPolicy, HugePages::On, HugePages::Off] {
            let ram = create_guest_memory(5 << 30, advice).unwrap();
            assert_eq!(ram.memory.num_regions(), 2);
            for region in ram.memory.iter() {
                let host = region.get_host_address(MemoryRegionAddress(0)).unwrap();
                assert_eq!(host as usize % HUGE_PAGE, 0, "{advice:?}");
                assert_eq!(region.start_addr().0 % HUGE_PAGE as u64, 0);
            }
        }
    }
}
