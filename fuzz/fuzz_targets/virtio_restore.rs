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
use pointsman_fuzz::virtio_device;
use virtio::balloon::{BalloonState, BalloonStats};
use virtio::net::NetState;
use virtio::{
    CoreState, DeviceState, GuestMemoryMmap, IrqTrigger, MmioEdges, MmioState, MmioTransport,
    Pausable, SavedQueue,
};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;

/// Fuzzer bytes read in order; zeros once they run out.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = self.0.len().min(N);
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    /// An address in guest memory or just past it, mostly.
    fn addr(&mut self) -> u64 {
        let a = u64::from(self.u32());
        if a & 0x8000_0000 != 0 {
            a
        } else {
            a % (MEM_SIZE as u64 + 0x100)
        }
    }
    fn queue(&mut self, max_size: u16) -> SavedQueue {
        let flags = self.u8();
        SavedQueue {
            max_size: if flags & 0x80 != 0 {
                self.u16()
            } else {
                max_size
            },
            next_avail: self.u16(),
            next_used: self.u16(),
            event_idx: flags & 1 != 0,
            size: if flags & 0x40 != 0 {
                self.u16()
            } else {
                1 << (self.u8() % 11)
            },
            ready: flags & 2 != 0,
            desc_table: self.addr(),
            avail_ring: self.addr(),
            used_ring: self.addr(),
        }
    }
    /// One queue per maximum size, give or take one.
    fn queues(&mut self, max_sizes: &[u16]) -> Vec<SavedQueue> {
        let count = match self.u8() % 8 {
            0 => max_sizes.len().saturating_sub(1),
            1 => max_sizes.len() + 1,
            _ => max_sizes.len(),
        };
        (0..count)
            .map(|i| self.queue(max_sizes.get(i).copied().unwrap_or(256)))
            .collect()
    }
    /// A device's own state: none, a NIC's or a balloon's.
    fn device_state(&mut self) -> Option<DeviceState> {
        match self.u8() % 3 {
            0 => None,
            1 => Some(DeviceState::Net(NetState { mac: self.take() })),
            _ => {
                let flags = self.u8();
                let held_stats = (flags & 1 != 0).then(|| self.u16());
                let stats = (flags & 2 != 0).then(|| BalloonStats::parse(&self.take::<30>()));
                Some(DeviceState::Balloon(Box::new(BalloonState {
                    num_pages: self.u32(),
                    actual: self.u32(),
                    held_stats,
                    stats,
                })))
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, data)) = data.split_first() else {
        return;
    };
    let device = virtio_device(choice, MEM_SIZE as u64);
    let max_sizes = device.queue_max_sizes().to_vec();
    let mut b = Fields(data);
    let flags = b.u8();
    let core = CoreState {
        device_type: if flags & 1 != 0 {
            b.u32()
        } else {
            device.device_type()
        },
        driver_features: if flags & 2 != 0 {
            u64::from(b.u32()) | u64::from(b.u32()) << 32
        } else {
            device.avail_features() | (1 << 32)
        },
        status: if flags & 4 != 0 { b.u32() } else { 0xf },
        activated: flags & 8 != 0,
        queues: b.queues(&max_sizes),
        live_queues: b.queues(&max_sizes),
        device: b.device_state(),
    };
    let state = MmioState {
        core,
        queue_select: b.u32(),
        device_features_select: b.u32(),
        driver_features_select: b.u32(),
        config_generation: b.u32(),
        interrupt_status: b.u32(),
    };
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let _ = mem.write_slice(&b.0[..b.0.len().min(MEM_SIZE)], GuestAddress(0));
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
