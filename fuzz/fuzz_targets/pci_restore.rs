//! Restores a virtio-pci function from a made-up saved state, as a
//! crafted snapshot file would give: the device (first byte, as in
//! virtio_restore), then edits to the state a fresh function saves (its
//! configuration space bytes and BAR, MSI-X table, pending bits and
//! control, vectors, ISR status, selects), the driver's view of the
//! device, then guest memory. A restored function is resumed, kicked and
//! driven through its BAR and configuration space. Refusals are the
//! expected answer; only a panic, an overflow or a hang is a finding.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use devices::pci::PciDevice;
use devices::BusDevice;
use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::{virtio_device, Fields};
use virtio::transport::pci::msix::{MsiMessage, MsiRoutes, Msix, MsixVector};
use virtio::transport::pci::{PciEdges, VirtioPciDevice};
use virtio::{GuestMemoryMmap, Pausable};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;
const BAR: u64 = 0xd000_0000;

/// KVM's routing table, which takes any message.
struct Routes;

impl MsiRoutes for Routes {
    fn set_msi_route(&self, _: u32, _: Option<MsiMessage>) -> std::io::Result<()> {
        Ok(())
    }
}

fn msix(queues: usize) -> Arc<Msix> {
    let vectors = (0..VirtioPciDevice::vectors_needed(queues))
        .map(|i| MsixVector {
            gsi: 24 + i as u32,
            irqfd: EventFd::new(EFD_NONBLOCK).unwrap(),
        })
        .collect();
    Arc::new(Msix::new(vectors, Arc::new(Routes)))
}

fn evts(queues: usize) -> Vec<EventFd> {
    (0..queues)
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, data)) = data.split_first() else {
        return;
    };
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    // The state a fresh function saves, for the fuzzer to edit.
    let fresh = virtio_device(choice, MEM_SIZE as u64);
    let queues = fresh.queue_max_sizes().len();
    let Ok(template) = VirtioPciDevice::new(fresh, mem.clone(), evts(queues), msix(queues), BAR)
    else {
        return;
    };
    let Ok(mut state) = template.save() else {
        return;
    };
    drop(template);

    let device = virtio_device(choice, MEM_SIZE as u64);
    let max_sizes = device.queue_max_sizes().to_vec();
    let mut b = Fields::new(data, MEM_SIZE as u64);
    state.core = b.core_state(device.as_ref(), &max_sizes);
    let flags = b.u16();
    // Configuration space: up to four bytes set anywhere.
    for _ in 0..(flags & 3) + u16::from(flags & 4 != 0) * 2 {
        let at = usize::from(b.u8());
        let value = b.u8();
        if let Some(byte) = state.config.bytes.get_mut(at) {
            *byte = value;
        }
    }
    if flags & 8 != 0 {
        state.config.bytes.pop();
    }
    if let Some(bar) = state.config.bars.first_mut() {
        if flags & 0x10 != 0 {
            bar.address = u64::from(b.u32()) << 12;
        }
        bar.sizing = [flags & 0x20 != 0, flags & 0x40 != 0];
    }
    // The MSI-X table, pending bits and control.
    for entry in &mut state.msix.entries {
        entry.address_lo = b.u32();
        entry.address_hi = b.u32();
        entry.data = b.u32();
        entry.masked = b.u8() & 1 != 0;
    }
    match b.u8() % 8 {
        0 => state
            .msix
            .entries
            .truncate(state.msix.entries.len().saturating_sub(1)),
        1 => state
            .msix
            .entries
            .extend(state.msix.entries.first().copied()),
        2 => state.msix.pending.push(0),
        _ => {}
    }
    for word in &mut state.msix.pending {
        *word = u64::from(b.u32()) | u64::from(b.u32()) << 32;
    }
    state.msix.enabled = flags & 0x80 != 0;
    state.msix.function_masked = flags & 0x100 != 0;
    // What the driver chose, selected and left unread.
    for vector in &mut state.queue_vectors {
        *vector = b.u16();
    }
    if flags & 0x200 != 0 {
        state.queue_vectors.push(0);
    }
    state.config_vector = b.u16();
    state.isr = b.u8();
    state.device_feature_select = b.u32();
    state.driver_feature_select = b.u32();
    state.queue_select = b.u16();
    state.config_generation = b.u8();
    let rest = b.rest();
    let _ = mem.write_slice(&rest[..rest.len().min(MEM_SIZE)], GuestAddress(0));

    let queue_evts = evts(max_sizes.len());
    let kicks: Vec<EventFd> = queue_evts.iter().map(|e| e.try_clone().unwrap()).collect();
    let edges = PciEdges {
        device,
        mem,
        queue_evts,
        msix: msix(max_sizes.len()),
        bar_address: BAR,
    };
    let Ok(mut function) = VirtioPciDevice::restore(edges, &state) else {
        return;
    };
    Pausable::resend_interrupt(&function);
    function.resume();
    for kick in &kicks {
        let _ = kick.write(1);
    }
    // The guest goes on: reads of every register, an unmask of each
    // vector and a read of the PBA.
    for reg in 0..64 {
        let _ = function.read_config_register(reg);
    }
    let mut word = [0u8; 4];
    for offset in (0..0x38).step_by(4).chain([0x1000, 0x6000]) {
        function.read(offset, &mut word);
    }
    for vector in 0..max_sizes.len() as u64 + 1 {
        function.write(0x4000 + vector * 16 + 12, &0u32.to_le_bytes());
    }
    std::thread::sleep(Duration::from_micros(200));
    let _ = function.pause(Duration::from_secs(1));
    let _ = function.save();
});
