//! What the fuzz targets share: guest memory and virtqueues built from
//! fuzzer bytes.

use virtio::GuestMemoryMmap;
use virtio_queue::{Queue, QueueState};
use vm_memory::{Bytes, GuestAddress};

/// How many bytes `queue` reads.
pub const QUEUE_BYTES: usize = 12;

/// A ready split queue described by `QUEUE_BYTES` fuzzer bytes: its size,
/// where its descriptor table and rings are (aligned as the spec requires,
/// anywhere else the fuzzer likes), its next indices and whether event-idx
/// is on. `None` when virtio-queue refuses the description.
pub fn queue(b: &[u8]) -> Option<Queue> {
    let b: &[u8; QUEUE_BYTES] = b.get(..QUEUE_BYTES)?.try_into().ok()?;
    let word = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let state = QueueState {
        max_size: 256,
        size: u16::from(b[0]).max(1).next_power_of_two().min(256),
        ready: true,
        desc_table: u64::from(word(1)) & !0xf,
        avail_ring: u64::from(word(3)) & !0x1,
        used_ring: u64::from(word(5)) & !0x3,
        next_avail: word(7),
        next_used: word(9),
        event_idx_enabled: b[11] & 1 != 0,
    };
    Queue::try_from(state).ok()
}

/// Guest memory made of `regions` (guest address, size), filled in order
/// from `data`; what `data` does not cover stays zero.
pub fn guest_memory(regions: &[(u64, usize)], mut data: &[u8]) -> GuestMemoryMmap {
    let ranges: Vec<(GuestAddress, usize)> = regions
        .iter()
        .map(|&(addr, size)| (GuestAddress(addr), size))
        .collect();
    let mem = GuestMemoryMmap::from_ranges(&ranges).expect("fixed test regions");
    for &(addr, size) in regions {
        let (here, rest) = data.split_at(data.len().min(size));
        mem.write_slice(here, GuestAddress(addr))
            .expect("inside the region");
        data = rest;
    }
    mem
}

/// Guest RAM the loader targets boot into: small enough that a kernel
/// file claiming more is refused, and the mapping stays cheap to make.
pub const BOOT_RAM: usize = 64 << 20;

/// What the VMM does with a kernel file after reading it (`vmm`'s
/// `machine.rs`): load it, put an initrd where its setup header allows,
/// write the command line and the boot information. Errors are the
/// expected answer to a bad file; only a panic is a finding.
pub fn boot_kernel(image: &[u8]) {
    use arch::x86_64::memory::memory_map;
    use std::io::Cursor;

    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), BOOT_RAM)]).expect("boot RAM");
    let Ok(kernel) = boot::load_kernel(&mem, &mut Cursor::new(image)) else {
        return;
    };
    let addr_max = kernel
        .setup_header
        .map_or(u64::from(u32::MAX), |h| u64::from(h.initrd_addr_max));
    let initrd = boot::load_initrd(
        &mem,
        &mut Cursor::new(&[0x5a; 4096][..]),
        kernel.end,
        addr_max,
    )
    .ok();
    let Ok(cmdline) = boot::write_cmdline(&mem, "console=ttyS0 reboot=k panic=1") else {
        return;
    };
    let map = memory_map(BOOT_RAM as u64);
    let info = boot::BootInfo {
        kernel: &kernel,
        cmdline,
        initrd,
        rsdp: arch::layout::RSDP_START,
        memory_map: &map,
    };
    let _ = boot::write_boot_info(&mem, &info);
}
