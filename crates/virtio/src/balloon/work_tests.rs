//! Unit tests of the balloon's queues and config space against guest
//! memory built here and queues written by `MockSplitQueue`.

#![allow(clippy::cast_possible_truncation)] // small fixed test values

use super::*;
use crate::balloon::{feature, stats, Balloon, BalloonConfig, BALLOON_PAGE};
use crate::device::{ActivateContext, ActivateError, VirtioDevice};
use crate::interrupt::{INT_CONFIG, INT_VRING};
use crate::IrqTrigger;
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const WRITE: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
const NEXT: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT as u16;
const MIB: u64 = 1 << 20;
const HIGH: u64 = 4096 * MIB;
const MEMORY: u64 = 3 * MIB;

/// 2 MiB below the 32-bit hole and 1 MiB above 4 GiB, as the VMM lays
/// out guest RAM around the hole.
fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), 2 * MIB as usize),
        (GuestAddress(HIGH), MIB as usize),
    ])
    .unwrap()
}

fn descriptor(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
}

fn pfn(addr: u64) -> u32 {
    u32::try_from(addr / BALLOON_PAGE).unwrap()
}

/// Host pages are 4 KiB here, so each guest page goes back on its own.
fn four_kib_host() -> bool {
    host_page_size() == 4096
}

struct Setup {
    mem: GuestMemoryMmap,
    handle: BalloonHandle,
    irq: Arc<IrqTrigger>,
}

impl Setup {
    fn new() -> Self {
        Setup {
            mem: mem(),
            handle: BalloonHandle::new(0, MEMORY),
            irq: Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap())),
        }
    }

    fn work(&self) -> BalloonWork {
        BalloonWork::new(
            self.mem.clone(),
            &self.handle,
            self.irq.clone(),
            vec![
                QueueRole::Inflate,
                QueueRole::Deflate,
                QueueRole::Stats,
                QueueRole::Reporting,
            ],
        )
    }

    fn write_pfns(&self, addr: u64, pfns: &[u32]) -> u32 {
        for (i, p) in pfns.iter().enumerate() {
            self.mem
                .write_obj(p.to_le(), GuestAddress(addr + 4 * i as u64))
                .unwrap();
        }
        4 * pfns.len() as u32
    }

    fn fill(&self, addr: u64, value: u64) {
        self.mem.write_obj(value, GuestAddress(addr)).unwrap();
    }

    fn read(&self, addr: u64) -> u64 {
        self.mem.read_obj(GuestAddress(addr)).unwrap()
    }
}

/// The used ring's index and its first entries (id, len).
fn used(
    mem: &GuestMemoryMmap,
    mock: &MockSplitQueue<'_, GuestMemoryMmap>,
) -> (u16, Vec<(u32, u32)>) {
    let base = mock.used_addr().0;
    let idx: u16 = mem.read_obj(GuestAddress(base + 2)).unwrap();
    let entries = (0..u64::from(idx))
        .map(|i| {
            let id = mem.read_obj(GuestAddress(base + 4 + 8 * i)).unwrap();
            let len = mem.read_obj(GuestAddress(base + 8 + 8 * i)).unwrap();
            (id, len)
        })
        .collect();
    (idx, entries)
}

#[test]
fn inflate_drops_ram_pages_and_ignores_pfns_outside_ram() {
    let s = Setup::new();
    for addr in [0x10_0000, 0x10_1000, 0x10_2000, HIGH] {
        s.fill(addr, 0x5555_aaaa);
    }
    let len = s.write_pfns(
        0x8000,
        &[
            pfn(0x10_0000),
            pfn(0x10_1000),
            pfn(3 * 1024 * MIB), // in the 32-bit hole
            pfn(HIGH),
            pfn(2 * MIB), // just past low RAM
            u32::MAX,
        ],
    );
    let mock = MockSplitQueue::new(&s.mem, 16);
    mock.add_desc_chains(&[descriptor(0x8000, len, 0, 0)], 0)
        .unwrap();
    let mut queue: Queue = mock.create_queue().unwrap();
    let mut work = s.work();
    work.serve(QueueRole::Inflate, &mut queue);
    assert_eq!(used(&s.mem, &mock), (1, vec![(0, 0)]));
    assert_eq!(work.pages_in_balloon(), 3);
    assert_eq!(s.irq.status(), INT_VRING);
    if four_kib_host() {
        assert_eq!(s.read(0x10_0000), 0, "given back");
        assert_eq!(s.read(0x10_1000), 0);
        assert_eq!(s.read(HIGH), 0);
    }
    assert_eq!(s.read(0x10_2000), 0x5555_aaaa, "not in the balloon");
    assert_eq!(work.metrics().inflate_count.get(), 1);
    assert_eq!(work.metrics().deflate_count.get(), 0);
}

#[test]
fn deflate_takes_pages_out_and_they_are_usable_again() {
    let s = Setup::new();
    let mock = MockSplitQueue::new(&s.mem, 16);
    let inflate = s.write_pfns(0x8000, &[pfn(0x10_0000), pfn(0x10_1000)]);
    let deflate = s.write_pfns(0x9000, &[pfn(0x10_0000), pfn(3 * 1024 * MIB)]);
    mock.add_desc_chains(&[descriptor(0x8000, inflate, 0, 0)], 0)
        .unwrap();
    let mut inflate_q: Queue = mock.create_queue().unwrap();
    let mut work = s.work();
    work.serve(QueueRole::Inflate, &mut inflate_q);
    assert_eq!(work.pages_in_balloon(), 2);

    let mock = MockSplitQueue::create(&s.mem, GuestAddress(0x4_0000), 16);
    mock.add_desc_chains(&[descriptor(0x9000, deflate, 0, 0)], 0)
        .unwrap();
    let mut deflate_q: Queue = mock.create_queue().unwrap();
    work.serve(QueueRole::Deflate, &mut deflate_q);
    assert_eq!(used(&s.mem, &mock), (1, vec![(0, 0)]));
    assert_eq!(work.pages_in_balloon(), 1);
    assert_eq!(work.metrics().deflate_count.get(), 1);
    s.fill(0x10_0000, 42);
    assert_eq!(s.read(0x10_0000), 42);
}

#[test]
fn malformed_inflate_requests_get_an_empty_used_entry() {
    let s = Setup::new();
    s.fill(0x10_0000, 7);
    s.write_pfns(0x8000, &[pfn(0x10_0000)]);
    s.write_pfns(0x9000, &[pfn(0x19_0000)]);
    // More PFNs than one request may carry, all naming one page.
    s.write_pfns(0x11_0000, &[pfn(0x18_0000); 8192]);
    let mock = MockSplitQueue::new(&s.mem, 16);
    let descs = [
        // Outside guest memory.
        descriptor(0xffff_f000, 4096, 0, 0),
        // Device-writable: not a PFN array.
        descriptor(0x8000, 4, WRITE, 0),
        // Crossing from RAM into the hole.
        descriptor(2 * MIB - 2, 4, 0, 0),
        // Longer than the cap: read up to it only.
        descriptor(0x11_0000, 0x8000, 0, 0),
        // A chain that loops on itself.
        descriptor(0x9000, 4, NEXT, 4),
    ];
    mock.add_desc_chains(&descs, 0).unwrap();
    let mut queue: Queue = mock.create_queue().unwrap();
    let mut work = s.work();
    work.serve(QueueRole::Inflate, &mut queue);
    let (idx, entries) = used(&s.mem, &mock);
    assert_eq!(idx, 5, "every request answered: {entries:?}");
    assert!(entries.iter().all(|&(_, len)| len == 0));
    assert_eq!(work.pages_in_balloon(), 2, "0x18_0000 and 0x19_0000");
    assert_eq!(s.read(0x10_0000), 7, "the writable buffer was not read");
}

#[test]
fn stats_buffer_is_held_until_new_figures_are_wanted() {
    let s = Setup::new();
    let mut bytes = 4u16.to_le_bytes().to_vec(); // free memory
    bytes.extend((123u64 << 20).to_le_bytes());
    s.mem.write_slice(&bytes, GuestAddress(0x8000)).unwrap();
    let mock = MockSplitQueue::new(&s.mem, 16);
    mock.add_desc_chains(&[descriptor(0x8000, 10, 0, 0)], 0)
        .unwrap();
    let mut queue: Queue = mock.create_queue().unwrap();
    let mut work = s.work();
    work.serve(QueueRole::Stats, &mut queue);
    assert_eq!(used(&s.mem, &mock).0, 0, "held");
    let stats = s.handle.stats().unwrap();
    assert_eq!(stats.get(stats::tag::FREE_MEMORY), Some(123 << 20));
    assert_eq!(s.irq.status(), 0);
    assert_eq!(work.metrics().stats_updates_count.get(), 1);

    work.request_stats(&mut queue);
    assert_eq!(used(&s.mem, &mock), (1, vec![(0, 0)]));
    assert_eq!(s.irq.status(), INT_VRING);
    // Nothing held any more: a second request does nothing.
    work.request_stats(&mut queue);
    assert_eq!(used(&s.mem, &mock).0, 1);
}

#[test]
fn a_second_stats_buffer_sends_the_first_back() {
    let s = Setup::new();
    let mock = MockSplitQueue::new(&s.mem, 16);
    mock.add_desc_chains(
        &[descriptor(0x8000, 10, 0, 0), descriptor(0x9000, 10, 0, 0)],
        0,
    )
    .unwrap();
    let mut queue: Queue = mock.create_queue().unwrap();
    let mut work = s.work();
    work.serve(QueueRole::Stats, &mut queue);
    assert_eq!(used(&s.mem, &mock), (1, vec![(0, 0)]));
    work.request_stats(&mut queue);
    assert_eq!(used(&s.mem, &mock), (2, vec![(0, 0), (1, 0)]));
}

#[test]
fn reported_free_pages_are_given_back() {
    let s = Setup::new();
    for addr in [0x10_0000, 0x10_1000, 0x10_4000, 0x11_0000] {
        s.fill(addr, 9);
    }
    let mock = MockSplitQueue::new(&s.mem, 16);
    let descs = [
        descriptor(0x10_0000, 0x2000, WRITE | NEXT, 1),
        // Device-readable: not a report.
        descriptor(0x10_4000, 0x1000, NEXT, 2),
        // Outside RAM, and running past its end: ignored or cut.
        descriptor(3 * 1024 * MIB, 0x1000, WRITE | NEXT, 3),
        descriptor(2 * MIB - 0x1000, 0x10_0000, WRITE | NEXT, 4),
        descriptor(u64::MAX - 0xfff, 0x1000, WRITE, 0),
    ];
    mock.add_desc_chains(&descs, 0).unwrap();
    let mut queue: Queue = mock.create_queue().unwrap();
    let mut work = s.work();
    work.serve(QueueRole::Reporting, &mut queue);
    assert_eq!(used(&s.mem, &mock), (1, vec![(0, 0)]));
    if four_kib_host() {
        assert_eq!(s.read(0x10_0000), 0);
        assert_eq!(s.read(0x10_1000), 0);
    }
    assert_eq!(s.read(0x10_4000), 9, "readable descriptors are not reports");
    assert_eq!(s.read(0x11_0000), 9);
    assert_eq!(work.pages_in_balloon(), 0, "reports do not inflate");
    assert_eq!(work.metrics().free_page_report_count.get(), 1);
    if four_kib_host() {
        // 8 KiB at 1 MiB, and the last page below 2 MiB.
        assert_eq!(work.metrics().free_page_report_freed.get(), 0x3000);
    }
}

#[test]
fn a_broken_avail_index_ends_the_pass() {
    // The driver's avail index is 10 behind the device's: no buffer can be
    // popped, yet the ring never looks drained. Found by the fuzz target.
    let s = Setup::new();
    let mock = MockSplitQueue::new(&s.mem, 16);
    let mut queue: Queue = mock.create_queue().unwrap();
    queue.set_next_avail(10);
    for role in [
        QueueRole::Inflate,
        QueueRole::Deflate,
        QueueRole::Stats,
        QueueRole::Reporting,
    ] {
        s.work().serve(role, &mut queue);
    }
    assert_eq!(used(&s.mem, &mock).0, 0);
}

#[test]
fn a_used_ring_on_top_of_the_avail_ring_cannot_keep_the_worker_busy() {
    // Every used entry bumps the avail index too: an endless supply of
    // buffers. Found by the fuzz target.
    let s = Setup::new();
    let desc = SplitDescriptor::new(0x8000, 0, 0, 0);
    s.mem.write_obj(desc, GuestAddress(0x1000)).unwrap();
    s.mem.write_obj(1u16, GuestAddress(0x2002)).unwrap(); // avail idx
    let state = virtio_queue::QueueState {
        max_size: 16,
        size: 16,
        ready: true,
        desc_table: 0x1000,
        avail_ring: 0x2000,
        used_ring: 0x2000,
        next_avail: 0,
        next_used: 0,
        event_idx_enabled: false,
    };
    let mut queue = Queue::try_from(state).unwrap();
    s.work().serve(QueueRole::Deflate, &mut queue);
    let served: u16 = s.mem.read_obj(GuestAddress(0x2002)).unwrap();
    assert!(usize::from(served) <= MAX_CHAINS_PER_WAKE + 1, "{served}");
}

#[test]
fn queues_not_set_up_are_left_alone() {
    let s = Setup::new();
    let mut queue = Queue::new(16).unwrap();
    s.work().serve(QueueRole::Inflate, &mut queue);
    assert_eq!(s.irq.status(), 0);
}

fn config(text: &str) -> BalloonConfig {
    BalloonConfig::parse(text).unwrap()
}

fn read_u32(b: &Balloon, offset: u64) -> u32 {
    let mut data = [0u8; 4];
    b.read_config(offset, &mut data);
    u32::from_le_bytes(data)
}

#[test]
fn config_space_holds_target_and_actual() {
    let mut b = Balloon::new(&config("size=8M"), MEMORY);
    assert_eq!(read_u32(&b, 0), 2048);
    assert_eq!(read_u32(&b, 4), 0);
    b.write_config(4, &1000u32.to_le_bytes());
    assert_eq!(read_u32(&b, 4), 1000);
    assert_eq!(b.handle().actual(), 1000 * BALLOON_PAGE);
    // num_pages is the device's; writes past the end go nowhere.
    b.write_config(0, &7u32.to_le_bytes());
    b.write_config(6, &[1, 2, 3, 4]);
    b.write_config(u64::MAX, &[1]);
    assert_eq!(read_u32(&b, 0), 2048);
    assert_eq!(read_u32(&b, 4), 1000 | (0x0201 << 16));
    assert_eq!(read_u32(&b, 8), 0);
    assert_eq!(read_u32(&b, u64::MAX), 0);
}

#[test]
fn features_follow_the_options() {
    let plain = Balloon::new(&config(""), MEMORY).avail_features();
    assert_eq!(
        plain & (feature::STATS_VQ | feature::DEFLATE_ON_OOM | feature::REPORTING),
        0
    );
    let all = Balloon::new(
        &config("stats=on,deflate-on-oom=on,free-page-reporting=on"),
        MEMORY,
    );
    let f = all.avail_features();
    assert_ne!(f & feature::STATS_VQ, 0);
    assert_ne!(f & feature::DEFLATE_ON_OOM, 0);
    assert_ne!(f & feature::REPORTING, 0);
    assert_eq!(all.queue_max_sizes().len(), 4);
    assert_eq!(
        Balloon::queue_roles(feature::REPORTING),
        vec![QueueRole::Inflate, QueueRole::Deflate, QueueRole::Reporting],
        "no gap for the stats queue the driver did not take"
    );
}

fn activate(b: &mut Balloon, queues: usize, irq: &Arc<IrqTrigger>) -> Result<(), ActivateError> {
    b.activate(ActivateContext {
        mem: mem(),
        interrupt: irq.clone(),
        queues: (0..queues).map(|_| Queue::new(256).unwrap()).collect(),
        queue_evts: (0..queues)
            .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
            .collect(),
    })
}

#[test]
fn new_target_at_run_time_raises_a_config_interrupt() {
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let mut b = Balloon::new(&config("stats=on"), MEMORY);
    let handle = b.handle();
    // Before a driver runs it the target only changes.
    handle.set_target(MIB).unwrap();
    assert_eq!(read_u32(&b, 0), 256);
    assert_eq!(irq.status(), 0);

    b.set_acked_features(feature::STATS_VQ);
    activate(&mut b, 3, &irq).unwrap();
    handle.set_target(2 * MIB + 100).unwrap();
    assert_eq!(read_u32(&b, 0), 512);
    assert_eq!(handle.target(), 2 * MIB);
    assert_eq!(irq.status(), INT_CONFIG);
    assert!(handle.set_target(MEMORY + 1).is_err());
    assert_eq!(handle.target(), 2 * MIB);

    b.reset();
    irq.ack(u32::MAX);
    handle.set_target(0).unwrap();
    assert_eq!(irq.status(), 0, "no driver after reset");
}

#[test]
fn activation_needs_the_queues_of_the_acked_features() {
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let mut b = Balloon::new(&config("free-page-reporting=on"), MEMORY);
    b.set_acked_features(feature::REPORTING);
    assert!(matches!(
        activate(&mut b, 2, &irq),
        Err(ActivateError::QueueCount {
            expected: 3,
            got: 2
        })
    ));
    activate(&mut b, 3, &irq).unwrap();
}
