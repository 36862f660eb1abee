//! A virtio-mmio transport saved and restored: the same bytes when saved
//! again, and an active device that goes on from its saved queue.
#![allow(clippy::cast_possible_truncation)] // small fixed test values

use std::sync::Arc;
use std::time::{Duration, Instant};

use devices::BusDevice;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{MmioEdges, MmioState};
use crate::block::{Block, DiskConfig};
use crate::rng::Rng;
use crate::transport::core::status;
use crate::{features, GuestMemoryMmap, IrqTrigger, MmioTransport, Pausable, VirtioDevice};

const QUEUE_SIZE: u16 = 16;
const DESC: u64 = 0x10000;
const AVAIL: u64 = 0x11000;
const USED: u64 = 0x12000;
const HEADER: u64 = 0x20000;
const DATA: u64 = 0x21000;
const STATUS_BYTE: u64 = 0x22000;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// A transport over `device` in 1 MiB of guest memory, with a way to kick
/// its queue.
struct Rig {
    transport: MmioTransport,
    mem: GuestMemoryMmap,
    kick: EventFd,
}

/// The edges of a transport over `device`, with a way to kick each of its
/// queues.
fn edges(device: Box<dyn VirtioDevice>, mem: &GuestMemoryMmap) -> (MmioEdges, Vec<EventFd>) {
    let evts: Vec<EventFd> = device
        .queue_max_sizes()
        .iter()
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    let kicks = evts.iter().map(|e| e.try_clone().unwrap()).collect();
    let edges = MmioEdges {
        device,
        mem: mem.clone(),
        interrupt: Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap())),
        queue_evts: evts,
    };
    (edges, kicks)
}

fn rig(device: Box<dyn VirtioDevice>) -> Rig {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let (e, mut kicks) = edges(device, &mem);
    let kick = kicks.remove(0);
    let transport = MmioTransport::new(e.device, e.mem, e.interrupt, e.queue_evts);
    Rig {
        transport,
        mem,
        kick,
    }
}

impl Rig {
    fn write(&mut self, offset: u64, value: u32) {
        self.transport.write(offset, &value.to_le_bytes());
    }

    fn read(&mut self, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        self.transport.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    /// The driver's start-up up to FEATURES_OK, and queue 0 set up.
    fn negotiate(&mut self) {
        let accepted = features::VERSION_1 | features::RING_EVENT_IDX;
        self.write(0x070, 1 | 2);
        self.write(0x024, 1);
        self.write(0x020, (accepted >> 32) as u32);
        self.write(0x024, 0);
        self.write(0x020, accepted as u32);
        self.write(0x070, 1 | 2 | status::FEATURES_OK);
        self.write(0x030, 0);
        self.write(0x038, u32::from(QUEUE_SIZE));
        self.write(0x080, DESC as u32);
        self.write(0x090, AVAIL as u32);
        self.write(0x0a0, USED as u32);
        self.write(0x044, 1);
    }

    fn start(&mut self) {
        self.negotiate();
        self.write(0x070, 1 | 2 | status::FEATURES_OK | status::DRIVER_OK);
        assert!(self.transport.core().is_activated());
    }

    fn descriptor(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = DESC + u64::from(index) * 16;
        self.mem.write_obj(addr, GuestAddress(at)).unwrap();
        self.mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        self.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
        self.mem.write_obj(next, GuestAddress(at + 14)).unwrap();
    }

    /// Makes chain `head` available and kicks the queue.
    fn submit(&self, head: u16) {
        let idx: u16 = self.mem.read_obj(GuestAddress(AVAIL + 2)).unwrap();
        let slot = AVAIL + 4 + 2 * u64::from(idx % QUEUE_SIZE);
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.mem
            .write_obj(idx.wrapping_add(1), GuestAddress(AVAIL + 2))
            .unwrap();
        self.kick.write(1).unwrap();
    }

    fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(USED + 2)).unwrap()
    }

    fn wait_used(&self, idx: u16) {
        let start = Instant::now();
        while self.used_idx() != idx {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "used index {} not {idx}",
                self.used_idx()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Saves the paused transport, checks the state's encoding survives a
    /// restore and a save again byte for byte, and returns the restored
    /// rig (over the same memory, with its own eventfds), still paused.
    fn round_trip(&self, device: Box<dyn VirtioDevice>) -> (MmioState, Rig) {
        let state = self.transport.save().unwrap();
        let bytes = snapshot::encode(&state).unwrap();
        let decoded: MmioState = snapshot::decode(&bytes).unwrap();
        let (e, mut kicks) = edges(device, &self.mem);
        let kick = kicks.remove(0);
        let transport = MmioTransport::restore(e, &decoded).unwrap();
        let again = snapshot::encode(&transport.save().unwrap()).unwrap();
        assert_eq!(bytes, again, "save, restore, save gave other bytes");
        let restored = Rig {
            transport,
            mem: self.mem.clone(),
            kick,
        };
        (state, restored)
    }
}

#[test]
fn a_transport_the_driver_is_still_setting_up_round_trips() {
    let mut rig = rig(Box::new(Rng::new()));
    rig.negotiate();
    rig.write(0x014, 1); // DeviceFeaturesSel
    rig.write(0x030, 3); // QueueSel, past the queues
    let (state, mut restored) = rig.round_trip(Box::new(Rng::new()));
    assert!(!state.core.activated && state.core.live_queues.is_empty());
    assert_eq!(restored.read(0x070), 1 | 2 | status::FEATURES_OK);
    assert_eq!(restored.read(0x010), 1, "DeviceFeaturesSel kept");
    restored.write(0x030, 0);
    assert_eq!(restored.read(0x044), 1, "queue 0 still ready");
    // The driver finishes: the restored device starts.
    restored.write(0x070, 1 | 2 | status::FEATURES_OK | status::DRIVER_OK);
    assert!(restored.transport.core().is_activated());
}

#[test]
fn a_restored_rng_goes_on_from_its_saved_queue() {
    let mut rig = rig(Box::new(Rng::new()));
    rig.start();
    rig.descriptor(0, DATA, 16, F_WRITE, 0);
    rig.submit(0);
    rig.wait_used(1);
    assert!(rig.transport.pause(Duration::from_secs(5)));
    let (state, restored) = rig.round_trip(Box::new(Rng::new()));
    let live = state.core.live_queues[0];
    assert_eq!((live.next_avail, live.next_used), (1, 1));
    assert!(live.event_idx, "EVENT_IDX acked");
    assert_ne!(state.interrupt_status, 0, "the completion's unread bit");
    drop(rig);
    restored.transport.resume();
    restored.submit(0);
    restored.wait_used(2);
}

/// An image of `sectors` sectors, each filled with its number, removed
/// when dropped.
struct Image(std::path::PathBuf);

impl Image {
    fn new(name: &str, sectors: u8) -> Image {
        let path =
            std::env::temp_dir().join(format!("virtio-persist-{}-{name}.img", std::process::id()));
        let bytes: Vec<u8> = (0..sectors).flat_map(|s| [s; 512]).collect();
        std::fs::write(&path, bytes).unwrap();
        Image(path)
    }

    fn block(&self) -> Box<dyn VirtioDevice> {
        let config = DiskConfig::parse(&format!("path={}", self.0.display())).unwrap();
        Box::new(Block::new(config).unwrap())
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A read of `sector` into DATA as chain 0.
fn read_request(rig: &Rig, sector: u64) {
    rig.mem.write_obj(0u32, GuestAddress(HEADER)).unwrap(); // IN
    rig.mem.write_obj(0u32, GuestAddress(HEADER + 4)).unwrap();
    rig.mem.write_obj(sector, GuestAddress(HEADER + 8)).unwrap();
    rig.mem
        .write_obj(0xffu8, GuestAddress(STATUS_BYTE))
        .unwrap();
    rig.descriptor(0, HEADER, 16, F_NEXT, 1);
    rig.descriptor(1, DATA, 512, F_WRITE | F_NEXT, 2);
    rig.descriptor(2, STATUS_BYTE, 1, F_WRITE, 0);
    rig.submit(0);
}

fn data_and_status(rig: &Rig) -> (u8, u8) {
    (
        rig.mem.read_obj(GuestAddress(DATA + 511)).unwrap(),
        rig.mem.read_obj(GuestAddress(STATUS_BYTE)).unwrap(),
    )
}

#[test]
fn a_restored_disk_serves_the_next_request_where_the_saved_queue_stopped() {
    let image = Image::new("disk", 8);
    let mut rig = rig(image.block());
    rig.start();
    read_request(&rig, 3);
    rig.wait_used(1);
    assert_eq!(data_and_status(&rig), (3, 0));
    assert!(rig.transport.pause(Duration::from_secs(5)));
    let (state, restored) = rig.round_trip(image.block());
    assert_eq!(state.core.live_queues[0].next_avail, 1);
    drop(rig);
    restored.transport.resume();
    read_request(&restored, 5);
    restored.wait_used(2);
    assert_eq!(data_and_status(&restored), (5, 0));
    // The used entry went to slot 1, after the saved one.
    let id: u32 = restored.mem.read_obj(GuestAddress(USED + 4 + 8)).unwrap();
    assert_eq!(id, 0);
}

#[test]
fn a_kick_the_saved_worker_had_not_taken_is_served_after_the_restore() {
    let image = Image::new("kick", 8);
    let mut rig = rig(image.block());
    rig.start();
    assert!(rig.transport.pause(Duration::from_secs(5)));
    // Kicked while paused: the old process's eventfd holds the kick.
    read_request(&rig, 6);
    let (_, restored) = rig.round_trip(image.block());
    drop(rig);
    restored.transport.resume();
    restored.wait_used(1);
    assert_eq!(data_and_status(&restored), (6, 0));
}

#[test]
fn bad_saved_states_are_refused() {
    let image = Image::new("bad", 8);
    let mut rig = rig(image.block());
    rig.start();
    assert!(rig.transport.pause(Duration::from_secs(5)));
    let state = rig.transport.save().unwrap();
    let restore = |state: &MmioState, device: Box<dyn VirtioDevice>| {
        let (e, _) = edges(device, &rig.mem);
        MmioTransport::restore(e, state)
            .err()
            .map(|e| e.to_string())
    };
    let other_device = restore(&state, Box::new(Rng::new())).unwrap();
    assert!(other_device.contains("type 2 was saved"), "{other_device}");
    let mut outside = state.clone();
    outside.core.live_queues[0].used_ring = 0xffff_0000;
    let error = restore(&outside, image.block()).unwrap();
    assert!(error.contains("outside guest memory"), "{error}");
    let mut huge = state.clone();
    huge.core.queues[0].size = 4096;
    let error = restore(&huge, image.block()).unwrap();
    assert!(error.contains("invalid queue"), "{error}");
    let mut unoffered = state.clone();
    unoffered.core.driver_features |= 1 << 60;
    let error = restore(&unoffered, image.block()).unwrap();
    assert!(error.contains("does not offer"), "{error}");
    let mut no_queues = state;
    no_queues.core.live_queues.clear();
    let error = restore(&no_queues, image.block()).unwrap();
    assert!(error.contains("has 0 queues"), "{error}");
}

#[test]
fn a_device_state_that_does_not_fit_the_device_is_refused() {
    // A balloon the driver has not touched yet, saved with an entropy
    // device's (empty) state: all else would fit.
    let balloon = || crate::balloon::Balloon::new(&Default::default(), 1 << 20);
    let rig = rig(Box::new(Rng::new()));
    let mut state = rig.transport.save().unwrap();
    let unused = state.core.queues[0];
    state.core.device_type = crate::device_type::BALLOON;
    state.core.queues = balloon()
        .queue_max_sizes()
        .iter()
        .map(|&max_size| crate::SavedQueue { max_size, ..unused })
        .collect();
    let (e, _) = edges(Box::new(balloon()), &rig.mem);
    let error = MmioTransport::restore(e, &state).err().unwrap().to_string();
    assert!(
        error.contains("virtio-balloon device was saved without its state"),
        "{error}"
    );
    // An entropy device given a balloon's state.
    let mut rng_state = rig.transport.save().unwrap();
    rng_state.core.device = balloon().save().unwrap().state;
    let (e, _) = edges(Box::new(Rng::new()), &rig.mem);
    let error = MmioTransport::restore(e, &rng_state)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("virtio-balloon device's state was saved for a virtio-rng"),
        "{error}"
    );
}

#[path = "persist_device_tests.rs"]
mod net_vsock_balloon;
