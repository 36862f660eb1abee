//! Restores a virtio-mmio transport from a made-up saved state, as a
//! snapshot file someone crafted would give (its checksum proves nothing
//! against that): the device behind it (first byte, as in virtio_mmio),
//! then the state's fields (the device's own state too), then guest
//! memory. A restored, active device is resumed and kicked, so its
//! worker serves whatever the saved queue positions point at. Refusals
//! are the expected answer; only a panic, an overflow or a hang is a
//! finding.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::{virtio_device, Fields};
use virtio::{GuestMemoryMmap, IrqTrigger, MmioEdges, MmioState, MmioTransport, Pausable};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, data)) = data.split_first() else {
        return;
    };
    let device = virtio_device(choice, MEM_SIZE as u64);
    let max_sizes = device.queue_max_sizes().to_vec();
    let mut b = Fields::new(data, MEM_SIZE as u64);
    let core = b.core_state(device.as_ref(), &max_sizes);
    let state = MmioState {
        core,
        queue_select: b.u32(),
        device_features_select: b.u32(),
        driver_features_select: b.u32(),
        config_generation: b.u32(),
        interrupt_status: b.u32(),
    };
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let rest = b.rest();
    let _ = mem.write_slice(&rest[..rest.len().min(MEM_SIZE)], GuestAddress(0));
    let evts: Vec<EventFd> = max_sizes
        .iter()
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    let kicks: Vec<EventFd> = evts.iter().map(|e| e.try_clone().unwrap()).collect();
    let edges = MmioEdges {
        device,
        mem,
        interrupt: Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap())),
        queue_evts: evts,
    };
    let Ok(transport) = MmioTransport::restore(edges, &state) else {
        return;
    };
    transport.resend_interrupt();
    transport.resume();
    for kick in &kicks {
        let _ = kick.write(1);
    }
    // Gives the worker a moment on the saved rings before the drop stops it.
    std::thread::sleep(Duration::from_micros(200));
    let _ = transport.pause(Duration::from_secs(1));
    let _ = transport.save();
});
