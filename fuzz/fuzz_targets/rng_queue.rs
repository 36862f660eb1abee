//! Walks a virtqueue whose rings and descriptors are all fuzzer-chosen
//! guest memory, through virtio-rng's request handling: loops, chains out
//! of memory, wrong directions and absurd lengths must end in a used entry
//! or nothing, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtio::{rng, GuestMemoryMmap, IrqTrigger};
use virtio_queue::{Queue, QueueState};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (header, memory) = data.split_at(16);
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let _ = mem.write_slice(&memory[..memory.len().min(MEM_SIZE)], GuestAddress(0));
    let word = |i: usize| u64::from(u16::from_le_bytes([header[i], header[i + 1]]));
    let state = QueueState {
        max_size: 256,
        size: (header[0] as u16 % 256).max(1).next_power_of_two().min(256),
        ready: true,
        desc_table: word(2) & !0xf,
        avail_ring: word(4) & !0x1,
        used_ring: word(6) & !0x3,
        next_avail: u16::from_le_bytes([header[8], header[9]]),
        next_used: u16::from_le_bytes([header[10], header[11]]),
        event_idx_enabled: header[12] & 1 != 0,
    };
    let Ok(mut queue) = Queue::try_from(state) else {
        return;
    };
    let irq = IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap());
    rng::process_queue(&mut queue, &mem, &irq);
});
