//! Walks a virtqueue whose rings and descriptors are all fuzzer-chosen
//! guest memory, through virtio-rng's request handling: loops, chains out
//! of memory, wrong directions and absurd lengths must end in a used entry
//! or nothing, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::{guest_memory, queue, QUEUE_BYTES};
use virtio::{rng, IrqTrigger};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;

fuzz_target!(|data: &[u8]| {
    let (Some(mut queue), Some(memory)) = (queue(data), data.get(QUEUE_BYTES..)) else {
        return;
    };
    let mem = guest_memory(&[(0, MEM_SIZE)], memory);
    let irq = IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap());
    rng::process_queue(&mut queue, &mem, &irq, &rng::EntropyMetrics::default());
});
