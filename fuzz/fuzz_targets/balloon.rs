//! Walks a virtqueue whose rings, descriptors and buffers are all
//! fuzzer-chosen guest memory through virtio-balloon's queue handling
//! (inflate, deflate, stats, free page reports) and its config space:
//! PFNs outside RAM or in the hole between the two RAM regions, loops,
//! wrong directions and absurd lengths must end in a used entry or
//! nothing, never a panic or a hang.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use virtio::balloon::{Balloon, BalloonConfig, BalloonWork, QueueRole};
use virtio::{GuestMemoryMmap, IrqTrigger, VirtioDevice};
use virtio_queue::{Queue, QueueState};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const LOW: usize = 0x1_0000;
/// A second region after a 64 KiB hole.
const HIGH: u64 = 0x2_0000;
const HIGH_SIZE: usize = 0x1_0000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 20 {
        return;
    }
    let (header, memory) = data.split_at(20);
    let mem = GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), LOW),
        (GuestAddress(HIGH), HIGH_SIZE),
    ])
    .unwrap();
    let _ = mem.write_slice(&memory[..memory.len().min(LOW)], GuestAddress(0));
    if memory.len() > LOW {
        let rest = &memory[LOW..];
        let _ = mem.write_slice(&rest[..rest.len().min(HIGH_SIZE)], GuestAddress(HIGH));
    }
    let word = |i: usize| u64::from(u16::from_le_bytes([header[i], header[i + 1]]));
    let state = QueueState {
        max_size: 256,
        size: (u16::from(header[0]) % 256).max(1).next_power_of_two().min(256),
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
    let role = match header[13] % 4 {
        0 => QueueRole::Inflate,
        1 => QueueRole::Deflate,
        2 => QueueRole::Stats,
        _ => QueueRole::Reporting,
    };
    let mut balloon = Balloon::new(&BalloonConfig::default(), (LOW + HIGH_SIZE) as u64);
    balloon.write_config(u64::from(header[14] % 16), &header[15..20]);
    let mut config = [0u8; 8];
    balloon.read_config(u64::from(header[14] % 16), &mut config);

    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let mut work = BalloonWork::new(mem.clone(), &balloon.handle(), irq);
    work.serve(role, &mut queue);
    if role == QueueRole::Stats {
        work.request_stats(&mut queue);
    }
    // The deflate queue undoes what inflation recorded, from the same ring.
    if role == QueueRole::Inflate {
        work.serve(QueueRole::Deflate, &mut queue);
    }
});
