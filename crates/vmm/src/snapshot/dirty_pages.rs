//! Which pages of guest RAM changed since the last snapshot: KVM's dirty
//! log, which holds the guest's own writes (and KVM's, such as the
//! kvm-clock page), ORed with the RAM regions' dirty bitmaps, which hold
//! the VMM's (`crate::memory::GuestMemoryMmap` says why both).

use std::ops::Deref;

use hypervisor::Vm;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use crate::memory::GuestMemoryMmap;

/// The bits of one 64-bit word of a dirty bitmap.
const WORD_BITS: usize = 64;

/// The dirty pages of every RAM region, in region (and memory slot)
/// order: bit `i % 64` of word `i / 64` is the region's 4 KiB page `i`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct DirtyPages {
    regions: Vec<Vec<u64>>,
}

impl DirtyPages {
    /// Reads and restarts both logs: the RAM's bitmaps, and KVM's if
    /// `kvm_logs` (the slots were mapped with `track_dirty_pages`). If
    /// KVM fails on a slot, what was taken goes back into the RAM's
    /// bitmaps before the error returns, so no page is lost to the next
    /// snapshot.
    pub(crate) fn take(
        vm: &Vm,
        memory: &GuestMemoryMmap,
        kvm_logs: bool,
    ) -> Result<DirtyPages, hypervisor::Error> {
        let mut taken = DirtyPages::default();
        for (slot, region) in (0u32..).zip(memory.iter()) {
            let mut pages = region.deref().bitmap().get_and_reset();
            if kvm_logs {
                match vm.take_dirty_log(slot, region.len()) {
                    Ok(log) => or_into(&mut pages, &log),
                    Err(e) => {
                        taken.regions.push(pages);
                        taken.give_back(memory);
                        return Err(e);
                    }
                }
            }
            taken.regions.push(pages);
        }
        Ok(taken)
    }

    /// Marks these pages dirty again in `memory`'s bitmaps: a snapshot
    /// that could not write them leaves them to the next one.
    pub(crate) fn give_back(&self, memory: &GuestMemoryMmap) {
        for (region, pages) in memory.iter().zip(&self.regions) {
            let bitmap = region.deref().bitmap();
            for (first, count) in runs(pages) {
                for page in first..first + count {
                    bitmap.set_bit(page);
                }
            }
        }
    }

    /// The runs of dirty pages of region `index`, in order: (first page,
    /// number of pages).
    pub(crate) fn runs(&self, index: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        runs(self.regions.get(index).map_or(&[], Vec::as_slice))
    }
}

/// ORs `other` into `into`, word for word; a longer `other` (it should
/// not be: both cover the same region) extends `into`.
fn or_into(into: &mut Vec<u64>, other: &[u64]) {
    if into.len() < other.len() {
        into.resize(other.len(), 0);
    }
    for (word, more) in into.iter_mut().zip(other) {
        *word |= more;
    }
}

/// The runs of set bits of `bitmap`: (first bit, number of bits).
fn runs(bitmap: &[u64]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bit = move |i: usize| bitmap[i / WORD_BITS] & (1 << (i % WORD_BITS)) != 0;
    let end = bitmap.len() * WORD_BITS;
    let mut at = 0;
    std::iter::from_fn(move || {
        // Whole clear words are skipped at once: RAM is mostly clean.
        while at < end && (bitmap[at / WORD_BITS] >> (at % WORD_BITS)) == 0 {
            at = (at / WORD_BITS + 1) * WORD_BITS;
        }
        while at < end && !bit(at) {
            at += 1;
        }
        if at >= end {
            return None;
        }
        let first = at;
        while at < end && bit(at) {
            at += 1;
        }
        Some((first, at - first))
    })
}

#[cfg(test)]
mod tests {
    use vm_memory::{Bytes, GuestAddress};

    use super::*;
    use crate::memory::{create_guest_memory, map_guest_memory};
    use crate::HugePages;

    #[test]
    fn the_guest_s_and_the_vmm_s_pages_are_ored() {
        let mut vmm = vec![0b0101, 0, 1 << 63];
        or_into(&mut vmm, &[0b0011, 1 << 7, 0]);
        assert_eq!(vmm, [0b0111, 1 << 7, 1 << 63]);
        let mut short = vec![1];
        or_into(&mut short, &[0, 2]);
        assert_eq!(short, [1, 2]);
    }

    #[test]
    fn runs_of_dirty_pages() {
        let bitmap = [0b1110_0110, 0, 1 << 63, 0b11];
        let got: Vec<_> = runs(&bitmap).collect();
        assert_eq!(got, [(1, 2), (5, 3), (191, 3)]);
        assert_eq!(runs(&[0, 0]).count(), 0);
        assert_eq!(runs(&[u64::MAX]).collect::<Vec<_>>(), [(0, 64)]);
        assert_eq!(runs(&[]).count(), 0);
    }

    /// The RAM's own bitmaps: each write through `vm-memory` marks its
    /// pages, a take restarts them, and pages given back come again.
    #[test]
    fn the_vmm_s_writes_are_taken_once_and_can_be_given_back() {
        let hypervisor = hypervisor::Hypervisor::open(std::path::Path::new("/dev/kvm")).unwrap();
        let vm = hypervisor.create_vm().unwrap();
        // 5 GiB: two regions (below the 32-bit hole, and from 4 GiB).
        let ram = create_guest_memory(5 << 30, HugePages::HostPolicy).unwrap();
        let memory = &ram.memory;
        memory.write_obj(1u8, GuestAddress(0x3000)).unwrap();
        // Across a page boundary: two pages.
        memory.write_obj(1u32, GuestAddress(0x4ffe)).unwrap();
        memory.write_obj(1u8, GuestAddress(1 << 32)).unwrap();
        let taken = DirtyPages::take(&vm, memory, false).unwrap();
        assert_eq!(taken.runs(0).collect::<Vec<_>>(), [(3, 3)]);
        assert_eq!(taken.runs(1).collect::<Vec<_>>(), [(0, 1)]);
        assert_eq!(taken.runs(2).count(), 0);
        let again = DirtyPages::take(&vm, memory, false).unwrap();
        assert_eq!(again.runs(0).count() + again.runs(1).count(), 0);
        taken.give_back(memory);
        assert_eq!(DirtyPages::take(&vm, memory, false).unwrap(), taken);
    }

    /// RAM that replaced the last snapshot's (a reset) is dirty throughout.
    #[test]
    fn fresh_ram_after_a_reset_is_all_dirty() {
        let hypervisor = hypervisor::Hypervisor::open(std::path::Path::new("/dev/kvm")).unwrap();
        let vm = hypervisor.create_vm().unwrap();
        let ram = create_guest_memory(5 << 30, HugePages::HostPolicy).unwrap();
        ram.mark_all_dirty();
        let taken = DirtyPages::take(&vm, &ram.memory, false).unwrap();
        for (index, region) in ram.memory.iter().enumerate() {
            let pages = usize::try_from(region.len() / 4096).unwrap();
            assert_eq!(taken.runs(index).collect::<Vec<_>>(), [(0, pages)]);
        }
    }

    /// A slot KVM keeps no log of fails the take, and what the RAM's
    /// bitmaps held is still there for the next one.
    #[test]
    fn a_failed_take_loses_no_page() {
        let hypervisor = hypervisor::Hypervisor::open(std::path::Path::new("/dev/kvm")).unwrap();
        let vm = hypervisor.create_vm().unwrap();
        let ram = create_guest_memory(64 << 20, HugePages::HostPolicy).unwrap();
        map_guest_memory(&vm, &ram.memory, false).unwrap();
        ram.memory.write_obj(1u8, GuestAddress(0x7000)).unwrap();
        assert!(DirtyPages::take(&vm, &ram.memory, true).is_err());
        let kept = DirtyPages::take(&vm, &ram.memory, false).unwrap();
        assert_eq!(kept.runs(0).collect::<Vec<_>>(), [(7, 1)]);
    }

    /// With KVM's logs on, a take reads every slot's (none of which a
    /// guest wrote here) and still holds the VMM's writes.
    #[test]
    fn kvm_logs_are_read_with_the_vmm_s() {
        let hypervisor = hypervisor::Hypervisor::open(std::path::Path::new("/dev/kvm")).unwrap();
        let vm = hypervisor.create_vm().unwrap();
        let ram = create_guest_memory(64 << 20, HugePages::HostPolicy).unwrap();
        map_guest_memory(&vm, &ram.memory, true).unwrap();
        ram.memory.write_obj(1u8, GuestAddress(0x7000)).unwrap();
        let taken = DirtyPages::take(&vm, &ram.memory, true).unwrap();
        assert_eq!(taken.runs(0).collect::<Vec<_>>(), [(7, 1)]);
    }
}
