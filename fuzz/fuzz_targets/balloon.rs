//! Walks a virtqueue whose rings, descriptors and buffers are all
//! fuzzer-chosen guest memory through virtio-balloon's queue handling
//! (inflate, deflate, stats, free page reports) and its config space:
//! PFNs outside RAM or in the hole between the two RAM regions, loops,
//! wrong directions and absurd lengths must end in a used entry or
//! nothing, never a panic or a hang.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::{guest_memory, queue, QUEUE_BYTES};
use virtio::balloon::{Balloon, BalloonConfig, BalloonWork, QueueRole};
use virtio::{IrqTrigger, VirtioDevice};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const LOW: usize = 0x1_0000;
/// A second region after a 64 KiB hole.
const HIGH: u64 = 0x2_0000;
const HIGH_SIZE: usize = 0x1_0000;

fuzz_target!(|data: &[u8]| {
    // A queue, the queue's role, a config offset and bytes, then memory.
    if data.len() < QUEUE_BYTES + 7 {
        return;
    }
    let (header, memory) = data.split_at(QUEUE_BYTES + 7);
    let Some(mut queue) = queue(header) else {
        return;
    };
    let mem = guest_memory(&[(0, LOW), (HIGH, HIGH_SIZE)], memory);
    let choices = &header[QUEUE_BYTES..];
    let role = match choices[0] % 4 {
        0 => QueueRole::Inflate,
        1 => QueueRole::Deflate,
        2 => QueueRole::Stats,
        _ => QueueRole::Reporting,
    };
    let mut balloon = Balloon::new(&BalloonConfig::default(), (LOW + HIGH_SIZE) as u64);
    balloon.write_config(u64::from(choices[1] % 16), &choices[2..7]);
    let mut config = [0u8; 8];
    balloon.read_config(u64::from(choices[1] % 16), &mut config);

    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let mut work = BalloonWork::new(
        mem.clone(),
        &balloon.handle(),
        irq,
        vec![
            QueueRole::Inflate,
            QueueRole::Deflate,
            QueueRole::Stats,
            QueueRole::Reporting,
        ],
    );
    work.serve(role, &mut queue);
    if role == QueueRole::Stats {
        work.request_stats(&mut queue);
    }
    // The deflate queue undoes what inflation recorded, from the same ring.
    if role == QueueRole::Inflate {
        work.serve(QueueRole::Deflate, &mut queue);
    }
});
