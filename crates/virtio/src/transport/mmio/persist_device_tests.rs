//! virtio-net, virtio-vsock and virtio-balloon saved and restored on
//! virtio-mmio, each with every queue set up: what their drivers see
//! survives (a NIC's MAC, a balloon's config space and held stats
//! buffer), and a restored vsock device tells its driver of a transport
//! reset.

use std::path::PathBuf;

use super::*;
use crate::balloon::{Balloon, BalloonConfig, BalloonState};
use crate::interrupt::INT_VRING;
use crate::net::{Net, NetConfig, NetState, Tap};
use crate::vsock::{Vsock, VsockConfig, EVENT_QUEUE};
use crate::DeviceState;

const MEM_SIZE: usize = 0x10_0000;
/// Buffers the tests' drivers hand to the devices.
const BUF: u64 = 0x8_0000;

/// Queue `i`'s descriptor table, avail ring and used ring.
fn ring(i: usize) -> (u64, u64, u64) {
    let base = 0x4_0000 + 0x4000 * i as u64;
    (base, base + 0x1000, base + 0x2000)
}

/// A transport whose driver set up every queue of its device, with a way
/// to kick each and the interrupt it raises.
struct Started {
    transport: MmioTransport,
    mem: GuestMemoryMmap,
    kicks: Vec<EventFd>,
    irq: Arc<IrqTrigger>,
}

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

impl Started {
    /// The driver's start-up with `accepted` features, every queue ready.
    fn new(device: Box<dyn VirtioDevice>, accepted: u64, mem: &GuestMemoryMmap) -> Started {
        let queues = device.queue_max_sizes().len();
        let (e, kicks) = edges(device, mem);
        let irq = e.interrupt.clone();
        let transport = MmioTransport::new(e.device, e.mem, e.interrupt, e.queue_evts);
        let mut started = Started {
            transport,
            mem: mem.clone(),
            kicks,
            irq,
        };
        started.write(0x070, 1 | 2);
        started.write(0x024, 1);
        started.write(0x020, (accepted >> 32) as u32);
        started.write(0x024, 0);
        started.write(0x020, accepted as u32);
        started.write(0x070, 1 | 2 | status::FEATURES_OK);
        for i in 0..queues {
            let (desc, avail, used) = ring(i);
            started.write(0x030, i as u32);
            started.write(0x038, u32::from(QUEUE_SIZE));
            started.write(0x080, desc as u32);
            started.write(0x090, avail as u32);
            started.write(0x0a0, used as u32);
            started.write(0x044, 1);
        }
        started.write(0x070, 1 | 2 | status::FEATURES_OK | status::DRIVER_OK);
        assert!(started.transport.core().is_activated());
        started
    }

    fn write(&mut self, offset: u64, value: u32) {
        self.transport.write(offset, &value.to_le_bytes());
    }

    fn read(&mut self, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        self.transport.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    /// Descriptor `index` of queue `q`.
    fn descriptor(&self, q: usize, index: u16, addr: u64, len: u32, flags: u16) {
        let at = ring(q).0 + u64::from(index) * 16;
        self.mem.write_obj(addr, GuestAddress(at)).unwrap();
        self.mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        self.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
        self.mem.write_obj(0u16, GuestAddress(at + 14)).unwrap();
    }

    /// Makes chain `head` of queue `q` available and kicks the queue.
    fn submit(&self, q: usize, head: u16) {
        let avail = ring(q).1;
        let idx: u16 = self.mem.read_obj(GuestAddress(avail + 2)).unwrap();
        let slot = avail + 4 + 2 * u64::from(idx % QUEUE_SIZE);
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.mem
            .write_obj(idx.wrapping_add(1), GuestAddress(avail + 2))
            .unwrap();
        self.kicks[q].write(1).unwrap();
    }

    fn used_idx(&self, q: usize) -> u16 {
        self.mem.read_obj(GuestAddress(ring(q).2 + 2)).unwrap()
    }

    /// (head, length) of used entry `i` of queue `q`.
    fn used(&self, q: usize, i: u16) -> (u32, u32) {
        let at = ring(q).2 + 4 + 8 * u64::from(i % QUEUE_SIZE);
        (
            self.mem.read_obj(GuestAddress(at)).unwrap(),
            self.mem.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }

    fn wait_used(&self, q: usize, idx: u16) {
        wait_until(&format!("used index {idx} of queue {q}"), || {
            self.used_idx(q) == idx
        });
    }

    /// Pauses the transport, saves it, restores `device` from the state's
    /// encoding over the same memory, and checks that saving the restored
    /// transport gives the same bytes. The restored one is still paused.
    fn round_trip(&self, device: Box<dyn VirtioDevice>) -> (MmioState, Started) {
        assert!(self.transport.pause(Duration::from_secs(5)));
        let state = self.transport.save().unwrap();
        let bytes = snapshot::encode(&state).unwrap();
        let decoded: MmioState = snapshot::decode(&bytes).unwrap();
        let (e, kicks) = edges(device, &self.mem);
        let irq = e.interrupt.clone();
        let transport = MmioTransport::restore(e, &decoded).unwrap();
        let again = snapshot::encode(&transport.save().unwrap()).unwrap();
        assert_eq!(bytes, again, "save, restore, save gave other bytes");
        let restored = Started {
            transport,
            mem: self.mem.clone(),
            kicks,
            irq,
        };
        (state, restored)
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(5), "no {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_restored_balloon_keeps_its_config_space_and_the_stats_buffer_it_holds() {
    let config = BalloonConfig {
        stats: true,
        ..Default::default()
    };
    let accepted = features::VERSION_1 | crate::balloon::feature::STATS_VQ;
    let balloon = Balloon::new(&config, MEM_SIZE as u64);
    let handle = balloon.handle();
    let mem = memory();
    let mut rig = Started::new(Box::new(balloon), accepted, &mem);
    let stats_queue = 2;
    // The driver's first report: the device keeps its buffer (head 0).
    let free_memory = [4u8, 0, 0, 0, 0x10, 0, 0, 0, 0, 0];
    mem.write_slice(&free_memory, GuestAddress(BUF)).unwrap();
    rig.descriptor(stats_queue, 0, BUF, 10, 0);
    rig.submit(stats_queue, 0);
    wait_until("statistics", || handle.stats().is_some());
    assert_eq!(rig.used_idx(stats_queue), 0, "the device holds the buffer");
    handle.set_target(10 * 4096).unwrap();
    rig.write(0x104, 7); // actual
    let (state, mut restored) = rig.round_trip(Box::new(Balloon::new(&config, MEM_SIZE as u64)));
    let Some(DeviceState::Balloon(saved)) = &state.core.device else {
        panic!("no balloon state: {state:?}");
    };
    let expected = BalloonState {
        num_pages: 10,
        actual: 7,
        held_stats: Some(0),
        stats: handle.stats(),
    };
    assert_eq!(**saved, expected);
    assert_eq!(state.core.live_queues.len(), 3);
    assert_eq!(restored.read(0x100), 10, "num_pages");
    assert_eq!(restored.read(0x104), 7, "actual");
    drop(rig);
    restored.transport.resume();
    // A second report hands the held buffer back: the driver gets head 0.
    restored.descriptor(stats_queue, 1, BUF + 0x100, 10, 0);
    restored.submit(stats_queue, 1);
    restored.wait_used(stats_queue, 1);
    assert_eq!(restored.used(stats_queue, 0).0, 0);
}

#[test]
fn a_made_up_held_stats_buffer_is_refused() {
    let config = BalloonConfig {
        stats: true,
        ..Default::default()
    };
    let accepted = features::VERSION_1 | crate::balloon::feature::STATS_VQ;
    let mem = memory();
    let rig = Started::new(
        Box::new(Balloon::new(&config, MEM_SIZE as u64)),
        accepted,
        &mem,
    );
    assert!(rig.transport.pause(Duration::from_secs(5)));
    let state = rig.transport.save().unwrap();
    let restore = |state: &MmioState| {
        let (e, _) = edges(Box::new(Balloon::new(&config, MEM_SIZE as u64)), &mem);
        MmioTransport::restore(e, state).err().unwrap().to_string()
    };
    let with_balloon = |edit: &dyn Fn(&mut BalloonState)| {
        let mut state = state.clone();
        let Some(DeviceState::Balloon(balloon)) = &mut state.core.device else {
            panic!("no balloon state");
        };
        edit(balloon);
        state
    };
    // Inside the largest queue, outside the one the driver set up.
    let error = restore(&with_balloon(&|b| b.held_stats = Some(QUEUE_SIZE)));
    assert!(error.contains("stats buffer 16"), "{error}");
    let error = restore(&with_balloon(&|b| b.held_stats = Some(u16::MAX)));
    assert!(error.contains("outside a queue of 256"), "{error}");
    let mut unready = with_balloon(&|b| b.held_stats = Some(0));
    unready.core.live_queues[2].ready = false;
    let error = restore(&unready);
    assert!(error.contains("not in a ready stats queue"), "{error}");
    let error = restore(&with_balloon(&|b| b.num_pages = u32::MAX));
    assert!(error.contains("larger than the guest's"), "{error}");
}

fn vsock_config(name: &str) -> VsockConfig {
    let dir = std::env::temp_dir().join(format!("virtio-persist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    VsockConfig {
        cid: 3,
        socket: dir.join("v.sock"),
    }
}

/// Two vsock devices' configurations (one saved, one restored: the saved
/// one's socket is still bound), removed when dropped.
struct VsockDirs(VsockConfig, VsockConfig);

impl VsockDirs {
    fn new(name: &str) -> VsockDirs {
        VsockDirs(
            vsock_config(&format!("{name}-a")),
            vsock_config(&format!("{name}-b")),
        )
    }

    fn dirs(&self) -> [PathBuf; 2] {
        [&self.0, &self.1].map(|c| c.socket.parent().unwrap().to_owned())
    }
}

impl Drop for VsockDirs {
    fn drop(&mut self) {
        for dir in self.dirs() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Posts a 4-byte event buffer (head `head`, filled with ones) on the
/// event queue.
fn post_event_buffer(rig: &Started, head: u16) -> u64 {
    let addr = BUF + u64::from(head) * 0x100;
    rig.mem.write_obj(u32::MAX, GuestAddress(addr)).unwrap();
    rig.descriptor(EVENT_QUEUE, head, addr, 4, F_WRITE);
    rig.submit(EVENT_QUEUE, head);
    addr
}

#[test]
fn a_restored_vsock_device_sends_a_transport_reset_in_a_posted_event_buffer() {
    let dirs = VsockDirs::new("reset");
    let mem = memory();
    let vsock = Vsock::new(dirs.0.clone()).unwrap();
    let rig = Started::new(Box::new(vsock), features::VERSION_1, &mem);
    let event = post_event_buffer(&rig, 0);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(rig.used_idx(EVENT_QUEUE), 0, "no event before a restore");
    let (state, restored) = rig.round_trip(Box::new(Vsock::new(dirs.1.clone()).unwrap()));
    assert_eq!(state.core.live_queues.len(), 3);
    assert_eq!(state.core.device, None);
    drop(rig);
    restored.irq.take_status();
    restored.transport.resume();
    restored.wait_used(EVENT_QUEUE, 1);
    assert_eq!(restored.used(EVENT_QUEUE, 0), (0, 4));
    let id: u32 = mem.read_obj(GuestAddress(event)).unwrap();
    assert_eq!(id, crate::vsock::EVENT_TRANSPORT_RESET);
    assert_ne!(restored.irq.status() & INT_VRING, 0, "the driver is told");
}

#[test]
fn a_restored_vsock_device_waits_for_an_event_buffer_to_send_its_reset() {
    let dirs = VsockDirs::new("reset-later");
    let mem = memory();
    let vsock = Vsock::new(dirs.0.clone()).unwrap();
    let rig = Started::new(Box::new(vsock), features::VERSION_1, &mem);
    let (_, restored) = rig.round_trip(Box::new(Vsock::new(dirs.1.clone()).unwrap()));
    drop(rig);
    restored.transport.resume();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(restored.used_idx(EVENT_QUEUE), 0);
    // Saved again while the reset waits: the next restore sends it too.
    let (_, again) = restored.round_trip(Box::new(Vsock::new(dirs.0.clone()).unwrap()));
    drop(restored);
    again.transport.resume();
    let event = post_event_buffer(&again, 0);
    again.wait_used(EVENT_QUEUE, 1);
    assert_eq!(again.used(EVENT_QUEUE, 0), (0, 4));
    let id: u32 = mem.read_obj(GuestAddress(event)).unwrap();
    assert_eq!(id, crate::vsock::EVENT_TRANSPORT_RESET);
    // One reset only.
    post_event_buffer(&again, 1);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(again.used_idx(EVENT_QUEUE), 1);
}

/// Runs `f` on a thread of its own in a new network namespace, so the
/// TAPs it makes never appear on the machine.
fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare takes flags only; it moves this thread alone
        // into a new network namespace.
        let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(ret, 0, "unshare: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

#[test]
fn a_restored_nic_keeps_its_mac_and_goes_on_from_its_saved_queues() {
    in_new_netns(|| {
        let tap = Arc::new(Tap::open("ptsm-snap0").expect("open a TAP"));
        // No MAC configured: each device built draws its own.
        let config = NetConfig::parse("tap=ptsm-snap0").unwrap();
        let nic = Net::new(&config, tap.clone());
        let mac = nic.mac();
        let accepted = features::VERSION_1
            | crate::net::features::MAC
            | crate::net::features::GUEST_CSUM
            | crate::net::features::GUEST_TSO4;
        let mem = memory();
        let mut rig = Started::new(Box::new(nic), accepted, &mem);
        let read_mac = |rig: &mut Started| {
            let low = rig.read(0x100).to_le_bytes();
            let high = rig.read(0x104).to_le_bytes();
            [low[0], low[1], low[2], low[3], high[0], high[1]]
        };
        assert_eq!(read_mac(&mut rig), mac);
        // A frame sent (the TAP is down: lost, its chain returned) and a
        // receive buffer offered.
        let (rx, tx) = (crate::net::RX_QUEUE, crate::net::TX_QUEUE);
        rig.descriptor(tx, 0, BUF, 12 + 60, 0);
        rig.submit(tx, 0);
        rig.wait_used(tx, 1);
        rig.descriptor(rx, 0, BUF + 0x1000, 2048, F_WRITE);
        rig.submit(rx, 0);
        let (state, mut restored) = rig.round_trip(Box::new(Net::new(&config, tap.clone())));
        assert_eq!(
            state.core.device,
            Some(DeviceState::Net(NetState { mac })),
            "the MAC the driver read"
        );
        let live = &state.core.live_queues;
        assert_eq!((live[tx].next_avail, live[tx].next_used), (1, 1));
        assert_eq!((live[rx].next_avail, live[rx].next_used), (0, 0));
        assert_eq!(read_mac(&mut restored), mac);
        drop(rig);
        restored.transport.resume();
        restored.descriptor(tx, 1, BUF, 12 + 60, 0);
        restored.submit(tx, 1);
        restored.wait_used(tx, 2);
        assert_eq!(restored.used(tx, 1).0, 1);
    });
}
