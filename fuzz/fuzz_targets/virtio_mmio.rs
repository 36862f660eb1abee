//! Drives a virtio-mmio transport with fuzzer-chosen register accesses of
//! any width and offset, over guest memory the fuzzer also chose. The
//! first byte picks the device behind it (rng, balloon, block, read-only
//! block, vsock), and half the accesses go to its configuration space,
//! across its end too.
#![no_main]

use std::sync::Arc;

use devices::BusDevice;
use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::virtio_device;
use virtio::{GuestMemoryMmap, IrqTrigger, MmioTransport, MMIO_SIZE};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;
/// Each access: kind and width byte, 2-byte offset, 4-byte value.
const OP_LEN: usize = 7;
/// Where the device's configuration space starts in the registers.
const CONFIG_SPACE: u64 = 0x100;

fuzz_target!(|data: &[u8]| {
    let Some((&device, data)) = data.split_first() else {
        return;
    };
    let split = data.len().min(OP_LEN * 64);
    let (ops, memory) = data.split_at(split);
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let _ = mem.write_slice(&memory[..memory.len().min(MEM_SIZE)], GuestAddress(0));
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let device = virtio_device(device, MEM_SIZE as u64);
    let evts = (0..device.queue_max_sizes().len())
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    let mut transport = MmioTransport::new(device, mem, irq, evts);
    for op in ops.chunks_exact(OP_LEN) {
        let width = [1usize, 2, 4, 8][usize::from(op[0] & 3)];
        let offset = u64::from(u16::from_le_bytes([op[1], op[2]]));
        let offset = if op[0] & 0x40 != 0 {
            CONFIG_SPACE + offset % (MMIO_SIZE - CONFIG_SPACE + 8)
        } else {
            offset % 0x200
        };
        let value = [op[3], op[4], op[5], op[6], 0, 0, 0, 0];
        if op[0] & 0x80 != 0 {
            transport.write(offset, &value[..width]);
        } else {
            let mut out = [0u8; 8];
            transport.read(offset, &mut out[..width]);
        }
    }
});
