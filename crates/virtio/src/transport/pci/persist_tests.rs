//! A virtio-pci function saved and restored: the same bytes when saved
//! again, its live MSI-X vectors routed again, its pending bits kept, an
//! active device going on from its saved queue; made-up states refused.
#![allow(clippy::cast_possible_truncation)] // small fixed test values

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devices::pci::PciDevice;
use devices::BusDevice;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{PciEdges, VirtioPciState};
use crate::rng::Rng;
use crate::transport::core::status;
use crate::transport::pci::layout::{notify_offset, MSIX_PBA_OFFSET, MSIX_TABLE_OFFSET};
use crate::transport::pci::msix::{MsiMessage, MsiRoutes, Msix, MsixVector};
use crate::transport::pci::VirtioPciDevice;
use crate::{features, GuestMemoryMmap, Pausable, VirtioInterrupt};

const BAR: u64 = 0xd000_0000;
const QUEUE_SIZE: u16 = 16;
const DESC: u64 = 0x10000;
const AVAIL: u64 = 0x11000;
const USED: u64 = 0x12000;
const BUFFER: u64 = 0x20000;

#[derive(Default)]
struct Routes(Mutex<Vec<(u32, Option<MsiMessage>)>>);

impl MsiRoutes for Routes {
    fn set_msi_route(&self, gsi: u32, message: Option<MsiMessage>) -> std::io::Result<()> {
        self.0.lock().unwrap().push((gsi, message));
        Ok(())
    }
}

/// What a function over an entropy device is wired to, and clones of its
/// eventfds to watch.
struct Wiring {
    edges: PciEdges,
    routes: Arc<Routes>,
    irqfds: Vec<EventFd>,
    kick: EventFd,
}

fn wiring(mem: &GuestMemoryMmap) -> Wiring {
    let routes = Arc::new(Routes::default());
    let mut irqfds = Vec::new();
    let vectors = (0..2)
        .map(|i| {
            let irqfd = EventFd::new(EFD_NONBLOCK).unwrap();
            irqfds.push(irqfd.try_clone().unwrap());
            MsixVector { gsi: 24 + i, irqfd }
        })
        .collect();
    let evt = EventFd::new(EFD_NONBLOCK).unwrap();
    let kick = evt.try_clone().unwrap();
    Wiring {
        edges: PciEdges {
            device: Box::new(Rng::new()),
            mem: mem.clone(),
            queue_evts: vec![evt],
            msix: Arc::new(Msix::new(vectors, routes.clone())),
            bar_address: BAR,
        },
        routes,
        irqfds,
        kick,
    }
}

fn write(dev: &mut VirtioPciDevice, offset: u64, len: usize, value: u64) {
    dev.write(offset, &value.to_le_bytes()[..len]);
}

fn read(dev: &mut VirtioPciDevice, offset: u64, len: usize) -> u64 {
    let mut data = [0u8; 8];
    dev.read(offset, &mut data[..len]);
    u64::from_le_bytes(data)
}

/// A started entropy device as Linux leaves it: memory and bus mastering
/// on, config changes on vector 0 (masked, with one pending), queue 0 on
/// vector 1 (live), MSI-X enabled; selects left at odd values.
fn started(mem: &GuestMemoryMmap) -> (VirtioPciDevice, Wiring) {
    let w = wiring(mem);
    let e = &w.edges;
    let mut dev = VirtioPciDevice::new(
        Box::new(Rng::new()),
        e.mem.clone(),
        e.queue_evts
            .iter()
            .map(|q| q.try_clone().unwrap())
            .collect(),
        e.msix.clone(),
        BAR,
    )
    .unwrap();
    dev.write_config_register(1, 0, &[0x06, 0x00]);
    let s = u64::from(status::ACKNOWLEDGE | status::DRIVER);
    write(&mut dev, 0x14, 1, s);
    write(&mut dev, 0x08, 4, 1);
    write(&mut dev, 0x0c, 4, features::VERSION_1 >> 32);
    let s = s | u64::from(status::FEATURES_OK);
    write(&mut dev, 0x14, 1, s);
    write(&mut dev, 0x16, 2, 0);
    write(&mut dev, 0x18, 2, u64::from(QUEUE_SIZE));
    write(&mut dev, 0x1a, 2, 1);
    write(&mut dev, 0x20, 8, DESC);
    write(&mut dev, 0x28, 8, AVAIL);
    write(&mut dev, 0x30, 8, USED);
    write(&mut dev, 0x1c, 2, 1);
    write(&mut dev, 0x10, 2, 0);
    for v in 0..2u64 {
        let entry = MSIX_TABLE_OFFSET + v * 16;
        write(&mut dev, entry, 8, 0xfee0_0000);
        write(&mut dev, entry + 8, 4, 0x40 + v);
        write(&mut dev, entry + 12, 4, u64::from(v == 0));
    }
    let control = usize::from(dev.msix_cap) / 4;
    dev.write_config_register(control, 2, &0x8000u16.to_le_bytes());
    write(&mut dev, 0x14, 1, s | u64::from(status::DRIVER_OK));
    assert!(dev.core().is_activated());
    dev.interrupt.signal_config_change();
    write(&mut dev, 0x00, 4, 1);
    write(&mut dev, 0x16, 2, 7);
    assert!(dev.pause(Duration::from_secs(1)));
    (dev, w)
}

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
}

fn encoded(state: &VirtioPciState) -> Vec<u8> {
    snapshot::encode(state).unwrap()
}

#[test]
fn a_started_function_round_trips_and_goes_on() {
    let mem = memory();
    let (dev, _old) = started(&mem);
    let state = dev.save().unwrap();
    let bytes = encoded(&state);
    let state: VirtioPciState = snapshot::decode(&bytes).unwrap();
    drop(dev);

    let w = wiring(&mem);
    let mut restored = VirtioPciDevice::restore(w.edges, &state).unwrap();
    assert_eq!(encoded(&restored.save().unwrap()), bytes);
    // Only the live vector is routed, to the message the guest wrote.
    assert_eq!(
        *w.routes.0.lock().unwrap(),
        vec![(
            25,
            Some(MsiMessage {
                address: 0xfee0_0000,
                data: 0x41
            })
        )]
    );
    // The guest reads what it left: selects, vectors, PBA, control.
    assert_eq!(read(&mut restored, 0x00, 4), 1);
    assert_eq!(read(&mut restored, 0x16, 2), 7);
    write(&mut restored, 0x16, 2, 0);
    assert_eq!(read(&mut restored, 0x1a, 2), 1);
    assert_eq!(read(&mut restored, 0x10, 2), 0);
    assert_eq!(read(&mut restored, MSIX_PBA_OFFSET, 4), 1);
    assert_eq!(
        restored.read_config_register(usize::from(restored.msix_cap) / 4) >> 16,
        0x8000 | 1,
        "MSI-X enabled, table size 2"
    );
    assert_eq!(restored.read_config_register(1) & 0xffff, 0x0006);
    assert_eq!(read(&mut restored, 0x1000, 1), 2, "ISR status kept");

    // Unmasking vector 0 delivers its saved pending interrupt.
    restored.resend_interrupt();
    assert!(w.irqfds[0].read().is_err());
    write(&mut restored, MSIX_TABLE_OFFSET + 12, 4, 0);
    assert_eq!(w.irqfds[0].read().unwrap(), 1);
    assert_eq!(read(&mut restored, MSIX_PBA_OFFSET, 4), 0);

    // The queue goes on: an entropy request answered on vector 1.
    mem.write_obj(BUFFER, GuestAddress(DESC)).unwrap();
    mem.write_obj(16u32, GuestAddress(DESC + 8)).unwrap();
    mem.write_obj(2u16, GuestAddress(DESC + 12)).unwrap();
    mem.write_obj(0u16, GuestAddress(AVAIL + 4)).unwrap();
    mem.write_obj(1u16, GuestAddress(AVAIL + 2)).unwrap();
    restored.resume();
    write(&mut restored, notify_offset(0), 2, 0);
    w.kick.write(1).unwrap();
    let start = Instant::now();
    while mem.read_obj::<u16>(GuestAddress(USED + 2)).unwrap() != 1 {
        assert!(start.elapsed() < Duration::from_secs(5), "no answer");
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    while w.irqfds[1].read().is_err() {
        assert!(start.elapsed() < Duration::from_secs(5), "no interrupt");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_pending_bit_on_a_live_vector_is_delivered_once_resent() {
    let mem = memory();
    let (dev, _old) = started(&mem);
    let mut state = dev.save().unwrap();
    state.msix.pending[0] |= 2;
    let w = wiring(&mem);
    let restored = VirtioPciDevice::restore(w.edges, &state).unwrap();
    assert!(w.irqfds[1].read().is_err(), "not before the resend");
    restored.resend_interrupt();
    assert_eq!(w.irqfds[1].read().unwrap(), 1);
    restored.resend_interrupt();
    assert!(w.irqfds[1].read().is_err(), "once");
}

/// A change that makes a saved state one no guest could have left.
type Edit = dyn Fn(&mut VirtioPciState);

#[test]
fn made_up_states_are_refused() {
    let mem = memory();
    let (dev, _old) = started(&mem);
    let good = dev.save().unwrap();
    drop(dev);
    let cases: Vec<(&str, Box<Edit>)> = vec![
        ("type", Box::new(|s| s.core.device_type = 2)),
        (
            "BAR 0 at 0xe0000000",
            Box::new(|s| s.config.bars[0].address = 0xe000_0000),
        ),
        ("byte 0x2", Box::new(|s| s.config.bytes[2] ^= 1)),
        (
            "3 vectors",
            Box::new(|s| s.msix.entries.push(s.msix.entries[0])),
        ),
        ("words", Box::new(|s| s.msix.pending.push(0))),
        ("past the table", Box::new(|s| s.msix.pending[0] |= 4)),
        (
            "dword aligned",
            Box::new(|s| s.msix.entries[1].address_lo |= 2),
        ),
        ("Message Control", Box::new(|s| s.msix.enabled = false)),
        ("queue vectors", Box::new(|s| s.queue_vectors.push(0))),
        ("queue 0 is 2", Box::new(|s| s.queue_vectors[0] = 2)),
        (
            "configuration changes is 9",
            Box::new(|s| s.config_vector = 9),
        ),
        ("ISR", Box::new(|s| s.isr = 4)),
        ("queue 0", Box::new(|s| s.core.live_queues[0].size = 3)),
    ];
    for (expected, edit) in cases {
        let mut state = good.clone();
        edit(&mut state);
        let w = wiring(&mem);
        let err = VirtioPciDevice::restore(w.edges, &state)
            .err()
            .unwrap_or_else(|| panic!("{expected}: restored"));
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
}
