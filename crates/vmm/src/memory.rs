//! Guest RAM: host mappings and their KVM memory slots.

use arch::x86_64::memory::ram_regions;
use hypervisor::{Hypervisor, Vm};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

use crate::{Error, Result};

pub(crate) type GuestMemoryMmap = vm_memory::GuestMemoryMmap<()>;

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

/// Allocates `size` bytes of guest RAM, laid out around the 32-bit hole.
/// The mappings are lazily backed: untouched guest pages cost nothing.
pub(crate) fn create_guest_memory(size: u64) -> Result<GuestMemoryMmap> {
    let too_large = |reason: String| Error::GuestMemory { size, reason };
    let ranges = ram_regions(size)
        .into_iter()
        .map(|(addr, len)| {
            usize::try_from(len)
                .map(|len| (addr, len))
                .map_err(|_| too_large("larger than the host address space".into()))
        })
        .collect::<Result<Vec<(GuestAddress, usize)>>>()?;
    GuestMemoryMmap::from_ranges(&ranges).map_err(|e| too_large(e.to_string()))
}

/// Gives every RAM region to the VM as a memory slot.
pub(crate) fn map_guest_memory(vm: &Vm, memory: &GuestMemoryMmap) -> Result<()> {
    for (slot, region) in (0u32..).zip(memory.iter()) {
        let host = region
            .get_host_address(MemoryRegionAddress(0))
            .map_err(|e| Error::GuestMemory {
                size: region.len(),
                reason: e.to_string(),
            })?;
        // SAFETY: the region is a live mapping owned by `memory`, which the
        // machine keeps until after the VM (and its vCPUs) are gone.
        unsafe { vm.map_memory(slot, region.start_addr().0, region.len(), host as u64)? };
    }
    Ok(())
}
