//! The receive and transmit loops against guest memory built here, with
//! mock virtqueues and a fake TAP.
#![allow(clippy::cast_possible_truncation)] // small fixed test values

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::queues::{
    FrameIo, NetQueues, NetStats, RX_MODERATION_SOURCE, RX_TIMER_SOURCE, TX_MODERATION_SOURCE,
    TX_TIMER_SOURCE,
};
use super::{features, HEADER_LEN, MAX_PACKET_LEN, RX_QUEUE, TX_QUEUE};
use crate::interrupt::INT_VRING;
use crate::moderation::{Hold, Moderation, ModerationConfig};
use crate::rate_limiter::{LimiterUpdate, RateLimiter, TokenBucketConfig};
use crate::{GuestMemoryMmap, IrqTrigger, Wake};

const WRITE: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
const NEXT: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT as u16;
const RX_RING: u64 = 0x1_0000;
const TX_RING: u64 = 0x2_0000;

#[derive(Default)]
struct FakeTap {
    incoming: VecDeque<Vec<u8>>,
    sent: Vec<Vec<u8>>,
    /// Reads fail with EIO while set.
    broken: bool,
}

impl FrameIo for FakeTap {
    fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.broken {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        let frame = self
            .incoming
            .pop_front()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::WouldBlock))?;
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok(n)
    }

    fn write_frame(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sent.push(buf.to_vec());
        Ok(buf.len())
    }
}

fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap()
}

fn d(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
}

fn limiter(ops: Option<u64>) -> RateLimiter {
    let bucket = ops.map(|size| TokenBucketConfig {
        size,
        refill: Duration::from_millis(40),
        one_time_burst: 0,
    });
    RateLimiter::new(None, bucket).unwrap()
}

struct Rig<'a> {
    mem: &'a GuestMemoryMmap,
    rx: MockSplitQueue<'a, GuestMemoryMmap>,
    tx: MockSplitQueue<'a, GuestMemoryMmap>,
    irq: Arc<IrqTrigger>,
    net: NetQueues<FakeTap>,
}

fn rig(mem: &GuestMemoryMmap, acked: u64, rx_ops: Option<u64>, tx_ops: Option<u64>) -> Rig<'_> {
    let rx = MockSplitQueue::create(mem, GuestAddress(RX_RING), 16);
    let tx = MockSplitQueue::create(mem, GuestAddress(TX_RING), 16);
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let mut rxq: Queue = rx.create_queue().unwrap();
    let mut txq: Queue = tx.create_queue().unwrap();
    use virtio_queue::QueueT;
    rxq.set_event_idx(acked & crate::features::RING_EVENT_IDX != 0);
    txq.set_event_idx(acked & crate::features::RING_EVENT_IDX != 0);
    let net = NetQueues::new(
        FakeTap::default(),
        mem.clone(),
        irq.clone(),
        rxq,
        txq,
        acked,
        (limiter(rx_ops), limiter(tx_ops)),
    );
    Rig {
        mem,
        rx,
        tx,
        irq,
        net,
    }
}

impl Rig<'_> {
    /// (head, len) of used entry `i` of a ring.
    fn used(&self, ring: &MockSplitQueue<GuestMemoryMmap>, i: u64) -> (u32, u32) {
        let at = ring.used_addr().0 + 4 + 8 * i;
        (
            self.mem.read_obj(GuestAddress(at)).unwrap(),
            self.mem.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }

    fn used_count(&self, ring: &MockSplitQueue<GuestMemoryMmap>) -> u16 {
        self.mem
            .read_obj(GuestAddress(ring.used_addr().0 + 2))
            .unwrap()
    }

    fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}

/// A header and `len` bytes of frame, each byte its index.
fn packet(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; HEADER_LEN];
    p.extend((0..len).map(|i| i as u8));
    p
}

#[test]
fn transmit_sends_header_and_frame_and_returns_the_chain() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, None);
    let p = packet(100);
    mem.write_slice(&p[..HEADER_LEN], GuestAddress(0x10_0000))
        .unwrap();
    mem.write_slice(&p[HEADER_LEN..], GuestAddress(0x11_0000))
        .unwrap();
    r.tx.add_desc_chains(
        &[
            d(0x10_0000, HEADER_LEN as u32, NEXT, 1),
            d(0x11_0000, 100, 0, 0),
        ],
        0,
    )
    .unwrap();
    r.net.handle(Wake::Queue(TX_QUEUE));
    assert_eq!(r.net.io_mut().sent, vec![p]);
    assert_eq!(r.used_count(&r.tx), 1);
    assert_eq!(r.used(&r.tx, 0), (0, 0));
    assert_eq!(r.irq.status(), INT_VRING);
    assert_eq!(r.net.stats().tx_frames, 1);
    let m = r.net.metrics();
    assert_eq!((m.tx_packets_count.get(), m.tx_bytes_count.get()), (1, 112));
    assert_eq!(m.tx_queue_event_count.get(), 1);
    assert_eq!(m.tx_malformed_frames.get() + m.tap_write_fails.get(), 0);
}

#[test]
fn malformed_transmit_chains_are_dropped_with_an_empty_used_entry() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, None);
    let gso = {
        let mut p = packet(60);
        p[0] = 1; // NEEDS_CSUM, which CSUM was not negotiated for
        p[1] = 1; // TCPv4 segmentation, not negotiated
        p
    };
    mem.write_slice(&gso, GuestAddress(0x13_0000)).unwrap();
    r.tx.add_desc_chains(
        &[
            // Shorter than the header.
            d(0x10_0000, 8, 0, 0),
            // Device-writable.
            d(0x10_0000, 64, WRITE, 0),
            // Outside guest memory.
            d(0x4000_0000, 64, 0, 0),
            // Longer than any frame.
            d(0x10_0000, MAX_PACKET_LEN as u32 + 1, 0, 0),
            // Offloads that were not negotiated.
            d(0x13_0000, gso.len() as u32, 0, 0),
            // Descriptor index beyond the queue.
            d(0x10_0000, 64, NEXT, 200),
        ],
        0,
    )
    .unwrap();
    // A chain that loops back on itself.
    r.tx.add_desc_chains(&[d(0x10_0000, 64, NEXT, 6)], 6)
        .unwrap();
    r.net.handle(Wake::Queue(TX_QUEUE));
    assert!(r.net.io_mut().sent.is_empty());
    assert_eq!(r.used_count(&r.tx), 7);
    for i in 0..7 {
        assert_eq!(r.used(&r.tx, i), (i as u32, 0), "entry {i}");
    }
    assert_eq!(r.net.stats().tx_dropped, 7);
    assert_eq!(r.net.stats().tx_frames, 0);
    assert_eq!(r.net.metrics().tx_malformed_frames.get(), 7);
    assert_eq!(r.net.metrics().tx_packets_count.get(), 0);
}

#[test]
fn receive_fills_one_chain_with_num_buffers_1() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, None);
    r.rx.add_desc_chains(
        &[
            d(0x10_0000, 8, WRITE | NEXT, 1),
            d(0x11_0000, 2000, WRITE, 0),
        ],
        0,
    )
    .unwrap();
    let p = packet(1000);
    r.net.io_mut().incoming.push_back(p.clone());
    r.net.handle(Wake::Source(super::queues::TAP_SOURCE));
    assert_eq!(r.used(&r.rx, 0), (0, 1012));
    let mut got = r.bytes(0x10_0000, 8);
    got.extend(r.bytes(0x11_0000, 1004));
    let mut want = p;
    want[10] = 1;
    assert_eq!(got, want);
    assert_eq!(r.irq.status(), INT_VRING);
    assert!(r.net.wants_io());
}

#[test]
fn mergeable_receive_spans_buffers() {
    let mem = mem();
    let mut r = rig(&mem, features::MRG_RXBUF, None, None);
    let descs: Vec<_> = (0..4)
        .map(|i| d(0x10_0000 + i * 0x1000, 1536, WRITE, 0))
        .collect();
    r.rx.add_desc_chains(&descs, 0).unwrap();
    let p = packet(3000);
    r.net.io_mut().incoming.push_back(p.clone());
    r.net.io_mut().incoming.push_back(packet(50));
    r.net.process_rx();
    assert_eq!(r.used_count(&r.rx), 3);
    assert_eq!(r.used(&r.rx, 0), (0, 1536));
    assert_eq!(r.used(&r.rx, 1), (1, 3012 - 1536));
    assert_eq!(r.used(&r.rx, 2), (2, 62));
    let mut got = r.bytes(0x10_0000, 1536);
    got.extend(r.bytes(0x10_1000, 3012 - 1536));
    let mut want = p;
    want[10] = 2;
    assert_eq!(got, want);
    assert_eq!(r.bytes(0x10_200a, 2), [1, 0]);
}

#[test]
fn receive_waits_for_buffers_without_watching_the_tap() {
    let mem = mem();
    let mut r = rig(&mem, crate::features::RING_EVENT_IDX, None, None);
    r.net.io_mut().incoming.push_back(packet(100));
    r.net.io_mut().incoming.push_back(packet(200));
    r.net.handle(Wake::Source(super::queues::TAP_SOURCE));
    assert!(!r.net.wants_io(), "a frame waits: stop watching the TAP");
    assert_eq!(r.used_count(&r.rx), 0);
    assert_eq!(r.irq.status(), 0);
    // The device asked for a kick at the next buffer (avail_event).
    let avail_event: u16 = mem
        .read_obj(GuestAddress(r.rx.used_addr().0 + 4 + 8 * 16))
        .unwrap();
    assert_eq!(avail_event, 0);
    r.rx.add_desc_chains(&[d(0x10_0000, 2048, WRITE, 0)], 0)
        .unwrap();
    r.net.handle(Wake::Queue(RX_QUEUE));
    assert_eq!(r.used(&r.rx, 0), (0, 112));
    assert!(!r.net.wants_io(), "the second frame waits");
    r.rx.add_desc_chains(&[d(0x11_0000, 2048, WRITE, 0)], 1)
        .unwrap();
    r.net.handle(Wake::Queue(RX_QUEUE));
    assert_eq!(r.used(&r.rx, 1), (1, 212));
    assert!(r.net.wants_io());
    assert_eq!(r.net.stats().rx_frames, 2);
    let m = r.net.metrics();
    assert_eq!((m.rx_packets_count.get(), m.rx_bytes_count.get()), (2, 324));
    assert_eq!(m.rx_count.get(), 2, "two frames read from the TAP");
    assert_eq!(m.no_rx_avail_buffer.get(), 2);
    assert_eq!(m.rx_tap_event_count.get(), 1);
    assert_eq!(m.rx_queue_event_count.get(), 2);
}

#[test]
fn oversized_frame_is_dropped_and_the_buffer_kept() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, None);
    r.rx.add_desc_chains(&[d(0x10_0000, 1526, WRITE, 0)], 0)
        .unwrap();
    r.net.io_mut().incoming.push_back(packet(5000));
    r.net.io_mut().incoming.push_back(packet(64));
    r.net.process_rx();
    assert_eq!(r.used_count(&r.rx), 1);
    assert_eq!(r.used(&r.rx, 0), (0, 76));
    assert_eq!(
        r.net.stats(),
        NetStats {
            rx_frames: 1,
            rx_dropped: 1,
            ..NetStats::default()
        }
    );
}

#[test]
fn malformed_receive_chains_get_empty_used_entries() {
    let mem = mem();
    let mut r = rig(&mem, features::MRG_RXBUF, None, None);
    r.rx.add_desc_chains(
        &[
            // Device-readable.
            d(0x10_0000, 1536, 0, 0),
            // Outside guest memory.
            d(0x4000_0000, 1536, WRITE, 0),
            // Smaller than the header.
            d(0x10_0000, 4, WRITE, 0),
            // A good one, then a bad one in the middle of a frame.
            d(0x11_0000, 1536, WRITE, 0),
            d(0x12_0000, 1536, 0, 0),
            d(0x13_0000, 1536, WRITE, 0),
        ],
        0,
    )
    .unwrap();
    for len in [100, 100, 100, 2000, 100] {
        r.net.io_mut().incoming.push_back(packet(len));
    }
    r.net.process_rx();
    let used: Vec<_> = (0..6).map(|i| r.used(&r.rx, i)).collect();
    assert_eq!(used, vec![(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 112)]);
    assert_eq!(r.net.stats().rx_dropped, 4);
    assert_eq!(r.net.stats().rx_frames, 1);
    assert_eq!(r.net.metrics().rx_fails.get(), 4);
}

#[test]
fn runt_frames_from_the_tap_are_skipped() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, None);
    r.rx.add_desc_chains(&[d(0x10_0000, 2048, WRITE, 0)], 0)
        .unwrap();
    r.net.io_mut().incoming.push_back(vec![0; HEADER_LEN]);
    r.net.io_mut().incoming.push_back(packet(10));
    r.net.process_rx();
    assert_eq!(r.used(&r.rx, 0), (0, 22));
    assert_eq!(r.net.stats().rx_dropped, 1);
    assert_eq!(r.net.metrics().rx_fails.get(), 1);
    assert_eq!(r.net.metrics().rx_count.get(), 1);
}

#[test]
fn transmit_rate_limit_holds_frames_until_the_timer() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, Some(1));
    mem.write_slice(&packet(50), GuestAddress(0x10_0000))
        .unwrap();
    let chain = |i| d(0x10_0000, 62, 0, i);
    r.tx.add_desc_chains(&[chain(0), chain(0), chain(0)], 0)
        .unwrap();
    r.net.handle(Wake::Queue(TX_QUEUE));
    assert_eq!(r.net.io_mut().sent.len(), 1);
    assert_eq!(r.used_count(&r.tx), 1);
    std::thread::sleep(Duration::from_millis(50));
    r.net.handle(Wake::Source(TX_TIMER_SOURCE));
    assert_eq!(r.net.io_mut().sent.len(), 2);
    std::thread::sleep(Duration::from_millis(50));
    r.net.handle(Wake::Source(TX_TIMER_SOURCE));
    assert_eq!(r.net.io_mut().sent.len(), 3);
    assert_eq!(r.used_count(&r.tx), 3);
    assert_eq!(r.net.metrics().tx_rate_limiter_throttled.get(), 2);
    assert_eq!(r.net.metrics().tx_rate_limiter_event_count.get(), 2);
}

#[test]
fn receive_rate_limit_holds_frames_until_the_timer() {
    let mem = mem();
    let mut r = rig(&mem, 0, Some(1), None);
    let descs: Vec<_> = (0..3)
        .map(|i| d(0x10_0000 + i * 0x1000, 2048, WRITE, 0))
        .collect();
    r.rx.add_desc_chains(&descs, 0).unwrap();
    for _ in 0..3 {
        r.net.io_mut().incoming.push_back(packet(60));
    }
    r.net.process_rx();
    assert_eq!(r.used_count(&r.rx), 1);
    assert!(
        !r.net.wants_io(),
        "blocked: the timer, not the TAP, wakes it"
    );
    std::thread::sleep(Duration::from_millis(50));
    r.net.handle(Wake::Source(RX_TIMER_SOURCE));
    assert_eq!(r.used_count(&r.rx), 2);
    std::thread::sleep(Duration::from_millis(50));
    r.net.handle(Wake::Source(RX_TIMER_SOURCE));
    assert_eq!(r.used_count(&r.rx), 3);
    assert!(r.net.wants_io());
    assert_eq!(r.net.metrics().rx_rate_limiter_throttled.get(), 2);
    assert_eq!(r.net.metrics().rx_event_rate_limiter_count.get(), 2);
}

#[test]
fn broken_avail_index_neither_panics_nor_spins() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, None);
    // avail.idx far beyond the queue size: no chain can be popped.
    mem.write_obj(500u16, GuestAddress(r.tx.avail_addr().0 + 2))
        .unwrap();
    mem.write_obj(500u16, GuestAddress(r.rx.avail_addr().0 + 2))
        .unwrap();
    r.net.io_mut().incoming.push_back(packet(60));
    r.net.handle(Wake::Queue(TX_QUEUE));
    r.net.handle(Wake::Queue(RX_QUEUE));
    assert_eq!(r.used_count(&r.tx), 0);
    assert_eq!(r.used_count(&r.rx), 0);
    assert!(!r.net.wants_io());
}

#[test]
fn a_failing_tap_is_left_alone_until_the_next_receive_kick() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, None);
    r.rx.add_desc_chains(&[d(0x10_0000, 2048, WRITE, 0)], 0)
        .unwrap();
    r.net.io_mut().broken = true;
    r.net.handle(Wake::Source(super::queues::TAP_SOURCE));
    assert!(!r.net.wants_io(), "no spinning on a failing TAP");
    assert_eq!(r.net.metrics().tap_read_fails.get(), 1);
    r.net.io_mut().broken = false;
    r.net.io_mut().incoming.push_back(packet(60));
    r.net.handle(Wake::Queue(RX_QUEUE));
    assert!(r.net.wants_io());
    assert_eq!(r.used(&r.rx, 0), (0, 72));
}

#[test]
fn a_full_transmit_ring_is_served_in_batches_with_a_self_kick() {
    let mem = mem();
    let tx = MockSplitQueue::create(&mem, GuestAddress(TX_RING), 256);
    let rx = MockSplitQueue::create(&mem, GuestAddress(RX_RING), 16);
    mem.write_slice(&packet(50), GuestAddress(0x10_0000))
        .unwrap();
    let chains: Vec<_> = (0..200).map(|_| d(0x10_0000, 62, 0, 0)).collect();
    tx.add_desc_chains(&chains, 0).unwrap();
    let kick = EventFd::new(EFD_NONBLOCK).unwrap();
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let mut net = NetQueues::new(
        FakeTap::default(),
        mem.clone(),
        irq,
        rx.create_queue().unwrap(),
        tx.create_queue().unwrap(),
        0,
        (limiter(None), limiter(None)),
    )
    .with_tx_kick(kick.try_clone().unwrap());
    net.handle(Wake::Queue(TX_QUEUE));
    let first = net.io_mut().sent.len();
    assert!(first < 200, "one pass is bounded: {first}");
    assert_eq!(kick.read().unwrap(), 1, "the worker kicked itself");
    net.handle(Wake::Queue(TX_QUEUE));
    assert_eq!(net.io_mut().sent.len(), 200);
    assert!(kick.read().is_err(), "no kick once the ring is empty");
}

/// Moderation that never ends a hold by itself: the test fires its timer.
fn moderated(mut r: Rig<'_>) -> Rig<'_> {
    let config = ModerationConfig {
        hold: Hold::Fixed(Duration::from_secs(60)),
        window: Duration::from_secs(60),
        max_held: 3,
        backoff: 1,
    };
    r.net.set_moderation(
        Moderation::new(config).unwrap(),
        Moderation::new(config).unwrap(),
    );
    r
}

/// Gives the guest `buffers` receive buffers and delivers one frame, whose
/// interrupt goes at once: the receive queue's stream begins.
fn begin_receive_stream(r: &mut Rig<'_>, buffers: u64) {
    let descs: Vec<_> = (0..buffers)
        .map(|i| d(0x10_0000 + i * 0x1000, 2048, WRITE, 0))
        .collect();
    r.rx.add_desc_chains(&descs, 0).unwrap();
    r.net.io_mut().incoming.push_back(packet(60));
    r.net.process_rx();
    assert_eq!(r.irq.take_status(), INT_VRING, "the first frame at once");
}

#[test]
fn a_receive_stream_shares_interrupts() {
    let mem = mem();
    let mut r = moderated(rig(&mem, 0, None, None));
    begin_receive_stream(&mut r, 8);
    r.net.io_mut().incoming.push_back(packet(60));
    r.net.process_rx();
    r.net.io_mut().incoming.push_back(packet(60));
    r.net.process_rx();
    assert_eq!(r.used_count(&r.rx), 3, "delivered at once");
    assert_eq!(r.irq.take_status(), 0, "the interrupt waits");
    r.net.handle(Wake::Source(RX_MODERATION_SOURCE));
    assert_eq!(r.irq.take_status(), INT_VRING, "one for both");
    // Three held buffers (`max_held`) go at once.
    for _ in 0..3 {
        r.net.io_mut().incoming.push_back(packet(60));
        r.net.process_rx();
    }
    assert_eq!(r.irq.take_status(), INT_VRING);
}

#[test]
fn a_guest_out_of_receive_buffers_hears_at_once() {
    let mem = mem();
    let mut r = moderated(rig(&mem, 0, None, None));
    r.rx.add_desc_chains(
        &[d(0x10_0000, 2048, WRITE, 0), d(0x11_0000, 2048, WRITE, 0)],
        0,
    )
    .unwrap();
    r.net.io_mut().incoming.push_back(packet(60));
    r.net.process_rx();
    assert_eq!(r.irq.take_status(), INT_VRING);
    r.net.io_mut().incoming.push_back(packet(60));
    r.net.io_mut().incoming.push_back(packet(60));
    r.net.process_rx();
    assert_eq!(r.used_count(&r.rx), 2);
    assert_eq!(r.irq.take_status(), INT_VRING, "no buffers left: no wait");
}

#[test]
fn transmit_completions_are_moderated_too() {
    let mem = mem();
    let mut r = moderated(rig(&mem, 0, None, None));
    for i in 0..2 {
        transmit_one(&mut r, &mem, i);
    }
    assert_eq!(r.net.io_mut().sent.len(), 2, "sent at once");
    assert_eq!(r.irq.take_status(), INT_VRING, "the first completion");
    r.net.handle(Wake::Source(TX_MODERATION_SOURCE));
    assert_eq!(r.irq.take_status(), INT_VRING, "the second, held");
}

/// Puts one 60-byte frame on the transmit ring at `index` and kicks it.
fn transmit_one(r: &mut Rig<'_>, mem: &GuestMemoryMmap, index: u16) {
    let p = packet(60);
    mem.write_slice(&p, GuestAddress(0x20_0000)).unwrap();
    r.tx.add_desc_chains(&[d(0x20_0000, p.len() as u32, 0, 0)], index)
        .unwrap();
    r.net.handle(Wake::Queue(TX_QUEUE));
}

#[test]
fn transmit_completions_ride_on_the_next_receive_interrupt() {
    let mem = mem();
    let mut r = moderated(rig(&mem, 0, None, None));
    begin_receive_stream(&mut r, 4);
    transmit_one(&mut r, &mem, 0);
    assert_eq!(r.net.io_mut().sent.len(), 1, "sent at once");
    assert_eq!(r.used_count(&r.tx), 1, "and completed");
    assert_eq!(
        r.irq.take_status(),
        0,
        "its interrupt waits for a receive one"
    );
    r.net.io_mut().incoming.push_back(packet(60));
    r.net.process_rx();
    assert_eq!(r.irq.take_status(), 0, "the receive interrupt is held");
    r.net.handle(Wake::Source(RX_MODERATION_SOURCE));
    assert_eq!(r.irq.take_status(), INT_VRING, "one interrupt for both");
    r.net.handle(Wake::Source(TX_MODERATION_SOURCE));
    assert_eq!(r.irq.take_status(), 0, "the completion went with it");
}

#[test]
fn a_riding_completion_goes_on_its_own_timer_when_nothing_is_received() {
    let mem = mem();
    let mut r = moderated(rig(&mem, 0, None, None));
    begin_receive_stream(&mut r, 1);
    transmit_one(&mut r, &mem, 0);
    assert_eq!(r.irq.take_status(), 0, "riding");
    r.net.handle(Wake::Source(TX_MODERATION_SOURCE));
    assert_eq!(r.irq.take_status(), INT_VRING, "its own timer sends it");
}

/// A bucket that refills once a minute: what it lets through in a test
/// is all it ever will.
fn per_minute(size: u64) -> Option<TokenBucketConfig> {
    Some(TokenBucketConfig {
        size,
        refill: Duration::from_secs(60),
        one_time_burst: 0,
    })
}

/// Puts `n` transmit chains of a 50-byte frame and `n` receive buffers
/// with a 60-byte frame waiting for each.
fn traffic(r: &mut Rig<'_>, n: u16) {
    r.mem
        .write_slice(&packet(50), GuestAddress(0x10_0000))
        .unwrap();
    let tx: Vec<_> = (0..n).map(|_| d(0x10_0000, 62, 0, 0)).collect();
    r.tx.add_desc_chains(&tx, 0).unwrap();
    let rx: Vec<_> = (0..u64::from(n))
        .map(|i| d(0x20_0000 + i * 0x1000, 2048, WRITE, 0))
        .collect();
    r.rx.add_desc_chains(&rx, 0).unwrap();
    for _ in 0..n {
        r.net.io_mut().incoming.push_back(packet(60));
    }
}

#[test]
fn each_direction_is_charged_to_its_own_limits() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, None);
    // Receive: 2 frames of 72 bytes fit 150 bytes; transmit: 3 frames.
    let rx = RateLimiter::new(per_minute(150), None).unwrap();
    let tx = RateLimiter::new(None, per_minute(3)).unwrap();
    r.net = NetQueues::new(
        FakeTap::default(),
        mem.clone(),
        r.irq.clone(),
        r.rx.create_queue().unwrap(),
        r.tx.create_queue().unwrap(),
        0,
        (rx, tx),
    );
    traffic(&mut r, 5);
    r.net.handle(Wake::Queue(TX_QUEUE));
    r.net.handle(Wake::Source(super::queues::TAP_SOURCE));
    assert_eq!(r.net.io_mut().sent.len(), 3, "three transmit operations");
    assert_eq!(r.used_count(&r.rx), 2, "150 bytes of receiving");
}

#[test]
fn new_limits_apply_to_their_direction_at_once() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, None);
    let one_each = || RateLimiter::new(None, per_minute(1)).unwrap();
    r.net = NetQueues::new(
        FakeTap::default(),
        mem.clone(),
        r.irq.clone(),
        r.rx.create_queue().unwrap(),
        r.tx.create_queue().unwrap(),
        0,
        (one_each(), one_each()),
    );
    traffic(&mut r, 4);
    r.net.handle(Wake::Queue(TX_QUEUE));
    r.net.handle(Wake::Source(super::queues::TAP_SOURCE));
    assert_eq!((r.net.io_mut().sent.len(), r.used_count(&r.rx)), (1, 1));
    // Transmit loses its limit, receive gets a larger bucket.
    let rx = LimiterUpdate {
        bandwidth: None,
        ops: Some(per_minute(2)),
    };
    let tx = LimiterUpdate {
        bandwidth: None,
        ops: Some(None),
    };
    r.net.update_limits(&rx, &tx);
    // Both were blocked: their timers fire in a millisecond.
    std::thread::sleep(Duration::from_millis(20));
    r.net.handle(Wake::Source(TX_TIMER_SOURCE));
    r.net.handle(Wake::Source(RX_TIMER_SOURCE));
    assert_eq!(r.net.io_mut().sent.len(), 4, "transmit unlimited");
    assert_eq!(r.used_count(&r.rx), 3, "two more received");
}

#[test]
fn a_frame_waiting_for_the_rate_limiter_is_saved_as_not_yet_taken() {
    let mem = mem();
    let mut r = rig(&mem, 0, None, Some(1));
    mem.write_slice(&packet(50), GuestAddress(0x10_0000))
        .unwrap();
    let chain = |i| d(0x10_0000, 62, 0, i);
    r.tx.add_desc_chains(&[chain(0), chain(0)], 0).unwrap();
    r.net.handle(Wake::Queue(TX_QUEUE));
    assert_eq!(r.net.io_mut().sent.len(), 1, "the second waits");
    let saved = r.net.save();
    assert_eq!(
        (saved[TX_QUEUE].next_avail, saved[TX_QUEUE].next_used),
        (1, 1),
        "sent after a restore"
    );
    assert_eq!(saved[RX_QUEUE].next_avail, 0);
    // The saved machine goes on as if nothing happened.
    std::thread::sleep(Duration::from_millis(50));
    r.net.handle(Wake::Source(TX_TIMER_SOURCE));
    assert_eq!(r.net.io_mut().sent.len(), 2);
    assert_eq!(r.net.save()[TX_QUEUE].next_avail, 2);
}

#[test]
fn saving_sends_the_interrupts_moderation_holds_back() {
    let mem = mem();
    let mut r = moderated(rig(&mem, 0, None, None));
    for i in 0..2 {
        transmit_one(&mut r, &mem, i);
    }
    assert_eq!(r.irq.take_status(), INT_VRING, "the first completion");
    r.net.save();
    assert_eq!(
        r.irq.take_status(),
        INT_VRING,
        "the second, sent on the save"
    );
}
