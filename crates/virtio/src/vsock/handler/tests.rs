#![allow(clippy::cast_possible_truncation)] // small fixed test values

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::*;
use crate::vsock::config::VsockConfig;
use crate::vsock::muxer::{Unwatched, LISTENER_SOURCE};
use crate::vsock::packet::{HOST_CID, SHUTDOWN_BOTH, TYPE_STREAM};
use crate::vsock::socket::HostSocket;
use crate::IrqTrigger;

const GUEST: u64 = 3;
const WRITE: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
const NEXT: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT as u16;
const QSIZE: u16 = 256;

fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
}

/// The guest's side of the queues, written the way Linux's driver does.
struct Driver<'a> {
    mem: &'a GuestMemoryMmap,
    rx: MockSplitQueue<'a, GuestMemoryMmap>,
    tx: MockSplitQueue<'a, GuestMemoryMmap>,
    rx_desc: u16,
    tx_desc: u16,
    next_buf: u64,
    /// Receive chains by head: (header address, payload address).
    rx_bufs: HashMap<u16, (u64, u64)>,
    rx_seen: u16,
    tx_seen: u16,
}

impl<'a> Driver<'a> {
    fn new(mem: &'a GuestMemoryMmap) -> Driver<'a> {
        Driver {
            mem,
            rx: MockSplitQueue::create(mem, GuestAddress(0), QSIZE),
            tx: MockSplitQueue::create(mem, GuestAddress(0x1_0000), QSIZE),
            rx_desc: 0,
            tx_desc: 0,
            next_buf: 0x10_0000,
            rx_bufs: HashMap::new(),
            rx_seen: 0,
            tx_seen: 0,
        }
    }

    fn alloc(&mut self, len: usize) -> u64 {
        let addr = self.next_buf;
        self.next_buf += (len as u64 + 0xfff) & !0xfff;
        addr
    }

    /// Adds a transmit chain made of `descs` (address, bytes, flags).
    fn add_tx(&mut self, parts: &[(u64, u32, u16)]) {
        let first = self.tx_desc;
        let descs: Vec<RawDescriptor> = parts
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, flags))| {
                let last = i + 1 == parts.len();
                let next = first + i as u16 + 1;
                desc(addr, len, flags | if last { 0 } else { NEXT }, next)
            })
            .collect();
        self.tx.add_desc_chains(&descs, first).unwrap();
        self.tx_desc += parts.len() as u16;
    }

    /// Sends a packet: header and payload in two descriptors.
    fn send(&mut self, h: Header, payload: &[u8]) {
        let hdr = self.alloc(HEADER_SIZE);
        self.mem
            .write_slice(&h.to_bytes(), GuestAddress(hdr))
            .unwrap();
        if payload.is_empty() {
            self.add_tx(&[(hdr, HEADER_SIZE as u32, 0)]);
        } else {
            let data = self.alloc(payload.len());
            self.mem.write_slice(payload, GuestAddress(data)).unwrap();
            self.add_tx(&[
                (hdr, HEADER_SIZE as u32, 0),
                (data, payload.len() as u32, 0),
            ]);
        }
    }

    fn packet(&mut self, op: Op, src_port: u32, dst_port: u32, payload: &[u8]) {
        let h = Header {
            src_cid: GUEST,
            dst_cid: HOST_CID,
            src_port,
            dst_port,
            len: payload.len() as u32,
            type_: TYPE_STREAM,
            op: op as u16,
            buf_alloc: 256 * 1024,
            ..Header::default()
        };
        self.send(h, payload);
    }

    /// Offers `n` receive buffers of a header and `size` payload bytes.
    fn give_rx(&mut self, n: usize, size: u32) {
        for _ in 0..n {
            let hdr = self.alloc(HEADER_SIZE);
            let data = self.alloc(size as usize);
            let head = self.rx_desc;
            let descs = [
                desc(hdr, HEADER_SIZE as u32, WRITE | NEXT, head + 1),
                desc(data, size, WRITE, 0),
            ];
            self.rx.add_desc_chains(&descs, head).unwrap();
            self.rx_bufs.insert(head, (hdr, data));
            self.rx_desc += 2;
        }
    }

    fn used(&self, q: &MockSplitQueue<'a, GuestMemoryMmap>, from: u16) -> Vec<(u16, u32)> {
        let base = q.used_addr().0;
        let idx: u16 = self.mem.read_obj(GuestAddress(base + 2)).unwrap();
        (from..idx)
            .map(|i| {
                let at = base + 4 + u64::from(i % QSIZE) * 8;
                let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
                let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
                (id as u16, len)
            })
            .collect()
    }

    /// Packets the device put in receive buffers since the last call.
    fn received(&mut self) -> Vec<(Header, Vec<u8>)> {
        let used = self.used(&self.rx, self.rx_seen);
        self.rx_seen += used.len() as u16;
        used.into_iter()
            .map(|(id, len)| {
                let (hdr, data) = self.rx_bufs[&id];
                let mut b = [0u8; HEADER_SIZE];
                self.mem.read_slice(&mut b, GuestAddress(hdr)).unwrap();
                let h = Header::from_bytes(&b);
                let mut payload = vec![0u8; len as usize - HEADER_SIZE];
                self.mem
                    .read_slice(&mut payload, GuestAddress(data))
                    .unwrap();
                assert_eq!(h.len as usize, payload.len());
                (h, payload)
            })
            .collect()
    }

    /// Transmit chains the device returned since the last call.
    fn tx_done(&mut self) -> usize {
        let used = self.used(&self.tx, self.tx_seen);
        assert!(used.iter().all(|&(_, len)| len == 0));
        self.tx_seen += used.len() as u16;
        used.len()
    }
}

struct Setup {
    dir: PathBuf,
    _socket: HostSocket,
    mem: GuestMemoryMmap,
    irq: Arc<IrqTrigger>,
    rx_kick: EventFd,
    tx_kick: EventFd,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("vsock-queues-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = HostSocket::bind(&dir.join("v.sock")).unwrap();
        Setup {
            dir,
            _socket: socket,
            mem: GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x200_0000)]).unwrap(),
            irq: Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap())),
            rx_kick: EventFd::new(EFD_NONBLOCK).unwrap(),
            tx_kick: EventFd::new(EFD_NONBLOCK).unwrap(),
        }
    }

    fn handler(&self, driver: &Driver) -> QueueHandler {
        let config = VsockConfig {
            cid: GUEST,
            socket: self.dir.join("v.sock"),
        };
        let muxer = Muxer::new(config, self._socket.listener().unwrap());
        QueueHandler::new(
            muxer,
            GUEST,
            self.mem.clone(),
            self.irq.clone(),
            DeviceQueue {
                queue: driver.rx.create_queue().unwrap(),
                kick: self.rx_kick.try_clone().unwrap(),
            },
            DeviceQueue {
                queue: driver.tx.create_queue().unwrap(),
                kick: self.tx_kick.try_clone().unwrap(),
            },
        )
    }

    fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("v.sock{suffix}"))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Wakes the handler for the listener and the first few sources.
fn poke(h: &mut QueueHandler, w: &Unwatched) {
    for s in LISTENER_SOURCE..8 {
        h.on_wake(Wake::Source(s), w);
    }
}

#[test]
fn host_program_and_guest_talk_through_the_queues() {
    let s = Setup::new("echo");
    let mut d = Driver::new(&s.mem);
    let mut h = s.handler(&d);
    let w = Unwatched::default();
    d.give_rx(8, 4096);
    h.on_wake(Wake::Queue(RX_QUEUE), &w);
    assert!(d.received().is_empty());

    let mut host = UnixStream::connect(s.path("")).unwrap();
    host.write_all(b"CONNECT 6000\n").unwrap();
    poke(&mut h, &w);
    let got = d.received();
    assert_eq!(got.len(), 1);
    let req = got[0].0;
    assert_eq!(req.op, Op::Request as u16);
    assert_ne!(s.irq.status() & crate::interrupt::INT_VRING, 0);

    d.packet(Op::Response, 6000, req.src_port, &[]);
    h.on_wake(Wake::Queue(TX_QUEUE), &w);
    assert_eq!(d.tx_done(), 1);
    let mut line = vec![0u8; format!("OK {}\n", req.src_port).len()];
    host.read_exact(&mut line).unwrap();
    assert_eq!(line, format!("OK {}\n", req.src_port).as_bytes());

    // 10 KiB host to guest arrives in 4 KiB buffers, in order.
    let data: Vec<u8> = (0..10240u32).map(|i| (i % 251) as u8).collect();
    host.write_all(&data).unwrap();
    poke(&mut h, &w);
    let got = d.received();
    let lens: Vec<usize> = got.iter().map(|(_, p)| p.len()).collect();
    assert_eq!(lens, vec![4096, 4096, 2048]);
    let joined: Vec<u8> = got.iter().flat_map(|(_, p)| p.clone()).collect();
    assert_eq!(joined, data);

    d.packet(Op::Rw, 6000, req.src_port, b"guest says hi");
    h.on_wake(Wake::Queue(TX_QUEUE), &w);
    let mut back = [0u8; 13];
    host.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"guest says hi");

    // The guest closes its socket: SHUTDOWN both ways, answered by RST.
    let shut = Header {
        src_cid: GUEST,
        dst_cid: HOST_CID,
        src_port: 6000,
        dst_port: req.src_port,
        type_: TYPE_STREAM,
        op: Op::Shutdown as u16,
        flags: SHUTDOWN_BOTH,
        ..Header::default()
    };
    d.send(shut, &[]);
    h.on_wake(Wake::Queue(TX_QUEUE), &w);
    let got = d.received();
    assert_eq!(got.last().unwrap().0.op, Op::Rst as u16);
    assert_eq!(h.muxer().connections(), 0);
    let mut rest = Vec::new();
    host.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    let m = h.muxer().metrics();
    assert_eq!((m.conns_added.get(), m.conns_removed.get()), (1, 1));
    assert_eq!(m.conns_killed.get(), 0, "closed, not killed");
    assert_eq!(m.rx_bytes_count.get(), 10240);
    assert!(m.rx_packets_count.get() >= 5, "request, 3 data, RST");
    assert_eq!((m.tx_packets_count.get(), m.tx_bytes_count.get()), (3, 13));
    assert_eq!(m.rx_queue_event_count.get(), 1);
    assert_eq!(m.tx_queue_event_count.get(), 3);
}

#[test]
fn guest_connects_to_a_host_port() {
    let s = Setup::new("to-host");
    let mut d = Driver::new(&s.mem);
    let mut h = s.handler(&d);
    let w = Unwatched::default();
    let server = UnixListener::bind(s.path("_5000")).unwrap();
    d.give_rx(4, 4096);
    d.packet(Op::Request, 1234, 5000, &[]);
    d.packet(Op::Request, 1235, 5001, &[]);
    h.on_wake(Wake::Queue(TX_QUEUE), &w);
    let got = d.received();
    let ops: Vec<(u16, u32)> = got.iter().map(|(h, _)| (h.op, h.dst_port)).collect();
    assert_eq!(
        ops,
        vec![(Op::Rst as u16, 1235), (Op::Response as u16, 1234)],
        "RSTs for nobody go first"
    );
    let (mut host, _) = server.accept().unwrap();
    let payload = vec![0x5au8; 3000];
    d.packet(Op::Rw, 1234, 5000, &payload);
    h.on_wake(Wake::Queue(TX_QUEUE), &w);
    let mut back = vec![0u8; 3000];
    host.read_exact(&mut back).unwrap();
    assert_eq!(back, payload);
}

#[test]
fn malformed_packets_are_dropped_or_reset_without_panic() {
    let s = Setup::new("malformed");
    let mut d = Driver::new(&s.mem);
    let mut h = s.handler(&d);
    let w = Unwatched::default();
    d.give_rx(16, 4096);
    let good = Header {
        src_cid: GUEST,
        dst_cid: HOST_CID,
        src_port: 1,
        dst_port: 2,
        type_: TYPE_STREAM,
        op: Op::Rw as u16,
        ..Header::default()
    };
    // Dropped silently: short header, wrong CIDs, write-only chain,
    // outside guest memory.
    let short = d.alloc(16);
    d.add_tx(&[(short, 16, 0)]);
    d.send(Header { src_cid: 9, ..good }, &[]);
    d.send(Header { dst_cid: 7, ..good }, &[]);
    let wo = d.alloc(64);
    d.add_tx(&[(wo, 64, WRITE)]);
    d.add_tx(&[(0xffff_0000_0000, 44, 0)]);
    // Answered with RST: bad op, bad type, length beyond the chain or
    // 64 KiB.
    d.send(Header { op: 0, ..good }, &[]);
    d.send(Header { op: 99, ..good }, &[]);
    d.send(Header { type_: 2, ..good }, &[]);
    d.send(Header { len: 100, ..good }, b"short");
    d.send(
        Header {
            len: u32::MAX,
            ..good
        },
        &[],
    );
    // A RST with a bad op is still not answered with a RST.
    d.send(
        Header {
            len: 5,
            op: Op::Rst as u16,
            type_: 9,
            ..good
        },
        &[],
    );
    h.on_wake(Wake::Queue(TX_QUEUE), &w);
    assert_eq!(d.tx_done(), 11, "every chain returned");
    let got = d.received();
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.iter().all(|(h, _)| h.op == Op::Rst as u16
        && h.dst_port == 1
        && h.src_port == 2
        && h.dst_cid == GUEST));
}

#[test]
fn unusable_receive_buffers_come_back_empty() {
    let s = Setup::new("bad-rx");
    let mut d = Driver::new(&s.mem);
    let mut h = s.handler(&d);
    let w = Unwatched::default();
    // Read-only, too small for a header, outside memory; then a good one.
    let ro = d.alloc(4096);
    let small = d.alloc(16);
    let descs = [
        desc(ro, 4096, 0, 0),
        desc(small, 16, WRITE, 0),
        desc(0xffff_0000_0000, 4096, WRITE, 0),
    ];
    for (i, one) in descs.iter().enumerate() {
        d.rx.add_desc_chains(std::slice::from_ref(one), i as u16)
            .unwrap();
    }
    d.rx_desc = 3;
    d.give_rx(1, 4096);
    d.packet(Op::Request, 1, 4444, &[]);
    h.on_wake(Wake::Queue(TX_QUEUE), &w);
    let used = d.used(&d.rx, 0);
    assert_eq!(used[..3], [(0, 0), (1, 0), (2, 0)]);
    assert_eq!(used[3], (3, HEADER_SIZE as u32), "the RST");
}

#[test]
fn rst_flood_waits_for_receive_buffers_instead_of_queueing() {
    let s = Setup::new("flood");
    let mut d = Driver::new(&s.mem);
    let mut h = s.handler(&d);
    let w = Unwatched::default();
    for port in 0..100 {
        d.packet(Op::Rw, port, 9, b"x");
    }
    h.on_wake(Wake::Queue(TX_QUEUE), &w);
    let taken = d.tx_done();
    assert!(taken < 100 && taken > 0, "took {taken}");
    // Buffers arrive: the answers go out, and the rest is read.
    d.give_rx(100, 256);
    h.on_wake(Wake::Queue(RX_QUEUE), &w);
    assert_eq!(d.tx_done(), 100 - taken);
    assert_eq!(d.received().len(), 100);
}

#[test]
fn without_receive_buffers_host_data_stays_in_the_socket() {
    let s = Setup::new("no-rx");
    let mut d = Driver::new(&s.mem);
    let mut h = s.handler(&d);
    let w = Unwatched::default();
    let server = UnixListener::bind(s.path("_5000")).unwrap();
    d.give_rx(1, 4096);
    d.packet(Op::Request, 1234, 5000, &[]);
    h.on_wake(Wake::Queue(TX_QUEUE), &w);
    assert_eq!(d.received()[0].0.op, Op::Response as u16);
    let (mut host, _) = server.accept().unwrap();
    host.set_nonblocking(true).unwrap();
    // The host program writes until its socket is full: nothing is read
    // into the VMM while the guest has no buffers.
    let chunk = [3u8; 4096];
    let mut written = 0usize;
    for _ in 0..1024 {
        match host.write(&chunk) {
            Ok(n) => written += n,
            Err(_) => break,
        }
        poke(&mut h, &w);
    }
    assert!(written < 1024 * 4096, "the socket never filled");
    assert!(d.received().is_empty());
    // Buffers arrive: data flows again, within the guest's credit.
    d.give_rx(100, 4096);
    h.on_wake(Wake::Queue(RX_QUEUE), &w);
    let got: usize = d.received().iter().map(|(_, p)| p.len()).sum();
    assert_eq!(got, written.min(256 * 1024));
    assert_eq!(h.muxer().buffered(), 0);
}

#[test]
fn header_only_receive_buffer_while_data_waits_comes_back_empty() {
    let s = Setup::new("room0");
    let mut d = Driver::new(&s.mem);
    let mut h = s.handler(&d);
    let w = Unwatched::default();
    let server = UnixListener::bind(s.path("_5000")).unwrap();
    d.give_rx(1, 4096);
    d.packet(Op::Request, 1234, 5000, &[]);
    h.on_wake(Wake::Queue(TX_QUEUE), &w);
    assert_eq!(d.received()[0].0.op, Op::Response as u16);
    let (mut host, _) = server.accept().unwrap();
    host.write_all(b"reply").unwrap();
    poke(&mut h, &w);
    // The reply waits; the guest offers a buffer of exactly one header
    // (no room for data), then a good one.
    let hdr = d.alloc(HEADER_SIZE);
    let head = d.rx_desc;
    d.rx.add_desc_chains(&[desc(hdr, HEADER_SIZE as u32, WRITE, 0)], head)
        .unwrap();
    d.rx_desc += 1;
    d.give_rx(1, 4096);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        h.on_wake(Wake::Queue(RX_QUEUE), &Unwatched::default());
        let _ = done.send(h);
    });
    let _h = finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the worker spun on a header-only receive buffer");
    let used = d.used(&d.rx, d.rx_seen);
    assert_eq!(used[0], (head, 0), "the header-only buffer, empty");
    assert_eq!(used[1], (head + 1, (HEADER_SIZE + 5) as u32), "the reply");
}

#[test]
fn corrupt_ring_indexes_do_not_hang_the_worker() {
    let s = Setup::new("corrupt");
    let mut d = Driver::new(&s.mem);
    let mut h = s.handler(&d);
    // An RST is owed (so the receive queue is looked at), and both
    // available indexes claim far more than the ring holds.
    d.packet(Op::Rw, 1, 9, b"x");
    h.on_wake(Wake::Queue(TX_QUEUE), &Unwatched::default());
    for q in [&d.rx, &d.tx] {
        s.mem
            .write_obj(1000u16, GuestAddress(q.avail_addr().0 + 2))
            .unwrap();
    }
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let w = Unwatched::default();
        h.on_wake(Wake::Queue(TX_QUEUE), &w);
        h.on_wake(Wake::Queue(RX_QUEUE), &w);
        let _ = done.send(());
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the worker spun on a corrupt ring");
}

#[test]
fn a_ring_that_refills_itself_gets_a_bounded_turn() {
    let s = Setup::new("refill");
    let d = Driver::new(&s.mem);
    // The used ring lies on the available ring: each used entry makes
    // one more chain available, forever.
    let state = virtio_queue::QueueState {
        max_size: QSIZE,
        size: QSIZE,
        ready: true,
        desc_table: 0x2_0000,
        avail_ring: 0x3_0000,
        used_ring: 0x3_0000,
        next_avail: 0,
        next_used: 1,
        event_idx_enabled: false,
    };
    s.mem.write_obj(1u16, GuestAddress(0x3_0002)).unwrap();
    let config = VsockConfig {
        cid: GUEST,
        socket: s.dir.join("v.sock"),
    };
    let mut h = QueueHandler::new(
        Muxer::new(config, s._socket.listener().unwrap()),
        GUEST,
        s.mem.clone(),
        s.irq.clone(),
        DeviceQueue {
            queue: d.rx.create_queue().unwrap(),
            kick: s.rx_kick.try_clone().unwrap(),
        },
        DeviceQueue {
            queue: Queue::try_from(state).unwrap(),
            kick: s.tx_kick.try_clone().unwrap(),
        },
    );
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        h.on_wake(Wake::Queue(TX_QUEUE), &Unwatched::default());
        let _ = done.send(h);
    });
    let h = finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the worker never returned");
    assert_eq!(s.tx_kick.read().unwrap(), 1, "it kicked itself to go on");
    drop(h);
}

#[test]
fn a_pending_transport_reset_skips_event_buffers_too_small_for_it() {
    let s = Setup::new("reset");
    let d = Driver::new(&s.mem);
    let events = MockSplitQueue::create(&s.mem, GuestAddress(0x2_0000), 16);
    let mut h = s
        .handler(&d)
        .with_event_queue(events.create_queue().unwrap(), true);
    let w = Unwatched::default();
    h.on_wake(Wake::Queue(EVENT_QUEUE), &w);
    assert!(h.reset_pending(), "no buffer posted yet");
    assert_eq!(s.irq.take_status(), 0);
    let (small, large) = (0x30_0000, 0x30_1000);
    s.mem.write_obj(u32::MAX, GuestAddress(large)).unwrap();
    let descs = [desc(small, 2, WRITE, 0), desc(large, 4, WRITE, 0)];
    events.add_desc_chains(&descs, 0).unwrap();
    h.on_wake(Wake::Queue(EVENT_QUEUE), &w);
    assert!(!h.reset_pending());
    assert_eq!(d.used(&events, 0), vec![(0, 0), (1, 4)]);
    let id: u32 = s.mem.read_obj(GuestAddress(large)).unwrap();
    assert_eq!(id, EVENT_TRANSPORT_RESET);
    assert_ne!(s.irq.take_status(), 0);
    assert_eq!(h.save().len(), 3, "rx, tx and events");
}
