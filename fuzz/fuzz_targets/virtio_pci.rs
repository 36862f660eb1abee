//! Drives a virtio-pci function with fuzzer-chosen accesses of any width
//! and offset to its BAR and its PCI configuration space, over guest
//! memory the fuzzer also chose: queue setup, MSI-X table and control,
//! the config-access window. The first byte picks the device behind it
//! (rng, balloon, block, read-only block, vsock), and some BAR accesses
//! go to its device configuration window, across its end too.
#![no_main]

use std::sync::Arc;

use devices::pci::PciDevice;
use devices::BusDevice;
use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::virtio_device;
use virtio::transport::pci::layout::{BAR_SIZE, DEVICE_CONFIG_LEN, DEVICE_CONFIG_OFFSET};
use virtio::transport::pci::msix::{MsiMessage, MsiRoutes, Msix, MsixVector};
use virtio::transport::pci::VirtioPciDevice;
use virtio::GuestMemoryMmap;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;
/// Each access: kind and width byte, 2-byte offset, 4-byte value.
const OP_LEN: usize = 7;

struct NoRoutes;

impl MsiRoutes for NoRoutes {
    fn set_msi_route(&self, _: u32, _: Option<MsiMessage>) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&device, data)) = data.split_first() else {
        return;
    };
    let split = data.len().min(OP_LEN * 128);
    let (ops, memory) = data.split_at(split);
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let _ = mem.write_slice(&memory[..memory.len().min(MEM_SIZE)], GuestAddress(0));
    let device = virtio_device(device, MEM_SIZE as u64);
    // As many vectors as the VMM gives the function.
    let vectors = (0..VirtioPciDevice::vectors_needed(device.queue_max_sizes().len()))
        .map(|i| MsixVector {
            gsi: 24 + u32::try_from(i).unwrap(),
            irqfd: EventFd::new(EFD_NONBLOCK).unwrap(),
        })
        .collect();
    let msix = Arc::new(Msix::new(vectors, Arc::new(NoRoutes)));
    let kicks = (0..device.queue_max_sizes().len())
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    let mut dev = VirtioPciDevice::new(device, mem, kicks, msix, 0xd000_0000).unwrap();
    for op in ops.chunks_exact(OP_LEN) {
        let width = [1usize, 2, 4, 8][usize::from(op[0] & 3)];
        let offset = u64::from(u16::from_le_bytes([op[1], op[2]]));
        let value = [op[3], op[4], op[5], op[6], op[3], op[4], op[5], op[6]];
        let bar_offset = if op[0] & 0x20 != 0 {
            DEVICE_CONFIG_OFFSET + offset % (DEVICE_CONFIG_LEN + 8)
        } else {
            offset % (BAR_SIZE + 0x100)
        };
        match op[0] >> 6 {
            0 => {
                let mut out = [0u8; 8];
                dev.read(bar_offset, &mut out[..width]);
            }
            1 => dev.write(bar_offset, &value[..width]),
            2 => {
                let _ = dev.read_config_register(usize::from(op[1] % 70));
            }
            _ => dev.write_config_register(
                usize::from(op[1] % 70),
                u64::from(op[2] % 5),
                &value[..width],
            ),
        }
    }
});
