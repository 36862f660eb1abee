//! The device end to end against guest memory built here: requests in a
//! mock queue, a real image file in the host's temporary directory.
#![allow(clippy::cast_possible_truncation)] // small fixed test values

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::bitmap::Bitmap;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::request::types;
use super::*;
use crate::interrupt::INT_VRING;
use crate::moderation::{Hold, Moderation, ModerationConfig};
use crate::rate_limiter::{RateLimiter, TokenBucketConfig};
use crate::{GuestMemoryMmap, IrqTrigger};

const WRITE: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
const NEXT: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT as u16;
pub(super) const HEADER: u64 = 0x1000;
pub(super) const DATA: u64 = 0x10000;
pub(super) const STATUS: u64 = 0x2000;

/// An image file removed when dropped.
pub(super) struct Image(pub PathBuf);

impl Image {
    pub fn new(size: u64) -> Image {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("virtio-blk-{}-{n}.img", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(size).unwrap();
        Image(path)
    }

    pub fn config(&self, extra: &str) -> DiskConfig {
        DiskConfig::parse(&format!("path={}{extra}", self.0.display())).unwrap()
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }

    fn allocated(&self) -> u64 {
        std::fs::metadata(&self.0).unwrap().blocks() * 512
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(super) fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap()
}

fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
}

fn write_header(mem: &GuestMemoryMmap, at: u64, kind: u32, sector: u64) {
    mem.write_obj(kind, GuestAddress(at)).unwrap();
    mem.write_obj(sector, GuestAddress(at + 8)).unwrap();
}

/// A three-descriptor request at descriptor `first`: header, data, status.
pub(super) fn request(
    mem: &GuestMemoryMmap,
    mock: &MockSplitQueue<GuestMemoryMmap>,
    first: u16,
    kind: u32,
    sector: u64,
    data: (u64, u32),
) {
    let slot = u64::from(first);
    let header = HEADER + slot * 16;
    write_header(mem, header, kind, sector);
    let data_flags = if kind == types::IN || kind == types::GET_ID {
        WRITE
    } else {
        0
    };
    mem.write_obj(0xffu8, GuestAddress(STATUS + slot)).unwrap();
    mock.add_desc_chains(
        &[
            desc(header, 16, NEXT, first + 1),
            desc(data.0, data.1, data_flags | NEXT, first + 2),
            desc(STATUS + slot, 1, WRITE, 0),
        ],
        first,
    )
    .unwrap();
}

pub(super) struct Rig {
    pub mem: GuestMemoryMmap,
    pub irq: Arc<IrqTrigger>,
    pub queue: BlockQueue,
    pub used_addr: u64,
}

impl Rig {
    /// Builds the device side of a queue once `fill` put requests in it.
    pub fn new(
        disk: Disk,
        limiter: RateLimiter,
        fill: impl FnOnce(&GuestMemoryMmap, &MockSplitQueue<GuestMemoryMmap>),
    ) -> Rig {
        let mem = mem();
        let mock = MockSplitQueue::new(&mem, 64);
        fill(&mem, &mock);
        let q: Queue = mock.create_queue().unwrap();
        let used_addr = mock.used_addr().0;
        let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
        let queue = BlockQueue::new(q, mem.clone(), irq.clone(), Arc::new(disk), limiter);
        Rig {
            mem,
            irq,
            queue,
            used_addr,
        }
    }

    pub fn used_count(&self) -> u16 {
        self.mem.read_obj(GuestAddress(self.used_addr + 2)).unwrap()
    }

    /// (head, length) of used entry `i`.
    fn used(&self, i: u64) -> (u32, u32) {
        let at = self.used_addr + 4 + i * 8;
        (
            self.mem.read_obj(GuestAddress(at)).unwrap(),
            self.mem.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }

    pub fn status(&self, slot: u64) -> u8 {
        self.mem.read_obj(GuestAddress(STATUS + slot)).unwrap()
    }
}

pub(super) fn unlimited() -> RateLimiter {
    RateLimiter::new(None, None).unwrap()
}

pub(super) fn open(image: &Image, extra: &str) -> Disk {
    Disk::open(&image.config(extra)).unwrap()
}

#[test]
fn write_then_read_back() {
    let image = Image::new(1 << 20);
    let mut rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        mem.write_slice(&[0xab; 4096], GuestAddress(DATA)).unwrap();
        request(mem, mock, 0, types::OUT, 8, (DATA, 4096));
        request(mem, mock, 3, types::FLUSH, 0, (DATA, 0));
        request(mem, mock, 6, types::IN, 8, (DATA + 0x2000, 4096));
    });
    rig.queue.process();
    assert_eq!(rig.used_count(), 3);
    assert_eq!([rig.status(0), rig.status(3), rig.status(6)], [0, 0, 0]);
    assert_eq!(rig.used(0), (0, 1), "a write returns only the status");
    assert_eq!(rig.used(2), (6, 4097), "a read returns data and status");
    let mut back = [0u8; 4096];
    rig.mem
        .read_slice(&mut back, GuestAddress(DATA + 0x2000))
        .unwrap();
    assert_eq!(back, [0xab; 4096]);
    assert_eq!(image.bytes()[4096..8192], [0xab; 4096]);
    assert_eq!(image.bytes()[..4096], [0; 4096]);
    assert_ne!(rig.irq.status(), 0, "the guest was interrupted");
    let m = rig.queue.metrics();
    assert_eq!((m.write_count.get(), m.write_bytes.get()), (1, 4096));
    assert_eq!((m.read_count.get(), m.read_bytes.get()), (1, 4096));
    assert_eq!(m.flush_count.get(), 1);
    assert_eq!(m.execute_fails.get() + m.invalid_reqs_count.get(), 0);
}

/// A Diff snapshot holds what the device wrote into the guest, which
/// KVM's dirty log does not see: a disk read (`preadv` straight into
/// guest memory, past the bitmap), the status byte and the used ring
/// mark their pages in the dirty bitmap; the buffer of a write, which
/// the device only reads, stays clean.
#[test]
fn what_the_device_writes_into_the_guest_is_marked_dirty() {
    let image = Image::new(1 << 20);
    let mut rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        request(mem, mock, 0, types::OUT, 8, (DATA, 4096));
        request(mem, mock, 3, types::IN, 8, (DATA + 0x2000, 8192));
    });
    let region = rig.mem.iter().next().unwrap();
    // The region's whole bitmap (the trait's `bitmap()` is a slice of it).
    let bitmap = std::ops::Deref::deref(region).bitmap();
    bitmap.reset();
    rig.queue.process();
    assert_eq!(rig.used_count(), 2);
    let dirty = |addr: u64| bitmap.dirty_at(usize::try_from(addr).unwrap());
    assert!(
        dirty(DATA + 0x2000) && dirty(DATA + 0x3000),
        "the read's data"
    );
    assert!(dirty(STATUS), "the status byte");
    assert!(dirty(rig.used_addr), "the used ring");
    assert!(!dirty(DATA), "the write's data was only read");
    assert!(!dirty(HEADER), "the headers were only read");
    assert!(!dirty(DATA + 0x4000), "past the read");
}

#[test]
fn requests_past_the_end_fail_with_ioerr() {
    let image = Image::new(1 << 20);
    let sectors = (1 << 20) / 512;
    let mut rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        request(mem, mock, 0, types::IN, sectors - 1, (DATA, 1024));
        request(mem, mock, 3, types::OUT, u64::MAX / 256, (DATA, 512));
        request(mem, mock, 6, types::IN, sectors - 1, (DATA, 512));
    });
    rig.queue.process();
    assert_eq!(
        [rig.status(0), rig.status(3), rig.status(6)],
        [status::IOERR, status::IOERR, status::OK]
    );
    let m = rig.queue.metrics();
    assert_eq!(m.execute_fails.get(), 2);
    assert_eq!((m.read_count.get(), m.read_bytes.get()), (1, 512));
    assert_eq!(m.write_count.get(), 0);
}

#[test]
fn read_only_disks_refuse_writes_but_read() {
    let image = Image::new(1 << 20);
    std::fs::write(&image.0, vec![7u8; 1 << 20]).unwrap();
    let mut rig = Rig::new(open(&image, ",readonly=on"), unlimited(), |mem, mock| {
        request(mem, mock, 0, types::OUT, 0, (DATA, 512));
        request(mem, mock, 3, types::DISCARD, 0, (DATA, 0));
        request(mem, mock, 6, types::IN, 0, (DATA, 512));
        request(mem, mock, 9, types::FLUSH, 0, (DATA, 0));
    });
    rig.queue.process();
    assert_eq!(
        [rig.status(0), rig.status(3), rig.status(6), rig.status(9)],
        [status::IOERR, status::IOERR, status::OK, status::OK]
    );
    assert_eq!(image.bytes(), vec![7u8; 1 << 20]);
}

#[test]
fn get_id_and_unsupported_types() {
    let image = Image::new(4096);
    let mut rig = Rig::new(open(&image, ",id=disk-one"), unlimited(), |mem, mock| {
        request(mem, mock, 0, types::GET_ID, 0, (DATA, 20));
        request(mem, mock, 3, 10, 0, (DATA + 0x100, 0)); // GET_LIFETIME
        request(mem, mock, 6, 0x7777, 0, (DATA + 0x100, 16));
    });
    rig.queue.process();
    let mut id = [0u8; 20];
    rig.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id[..9], b"disk-one\0");
    assert_eq!(rig.used(0), (0, 21));
    assert_eq!(
        [rig.status(0), rig.status(3), rig.status(6)],
        [status::OK, status::UNSUPP, status::UNSUPP]
    );
    assert_eq!(rig.queue.metrics().invalid_reqs_count.get(), 2);
}

#[test]
fn default_ids_differ_between_files() {
    let (a, b) = (Image::new(4096), Image::new(4096));
    let (a, b) = (open(&a, ""), open(&b, ""));
    assert_ne!(a.id(), b.id());
    assert!(a.id().starts_with(b"ptsm-"));
}

/// One discard or write-zeroes range at DATA.
pub(super) fn range(mem: &GuestMemoryMmap, sector: u64, sectors: u32, flags: u32) {
    mem.write_obj(sector, GuestAddress(DATA)).unwrap();
    mem.write_obj(sectors, GuestAddress(DATA + 8)).unwrap();
    mem.write_obj(flags, GuestAddress(DATA + 12)).unwrap();
}

#[test]
fn discard_punches_a_hole() {
    let image = Image::new(0);
    std::fs::write(&image.0, vec![1u8; 1 << 20]).unwrap();
    let before = image.allocated();
    let mut rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        range(mem, 0, 1024, 0);
        request(mem, mock, 0, types::DISCARD, 0, (DATA, 16));
    });
    rig.queue.process();
    assert_eq!(rig.status(0), status::OK);
    assert!(
        image.allocated() <= before - (512 << 10),
        "{} -> {}",
        before,
        image.allocated()
    );
    assert_eq!(image.bytes().len(), 1 << 20, "the size stays");
}

#[test]
fn write_zeroes_with_and_without_unmap() {
    let image = Image::new(0);
    std::fs::write(&image.0, vec![1u8; 1 << 20]).unwrap();
    let disk = open(&image, "");
    let mut rig = Rig::new(disk, unlimited(), |mem, mock| {
        range(mem, 8, 8, 0);
        request(mem, mock, 0, types::WRITE_ZEROES, 0, (DATA, 16));
    });
    rig.queue.process();
    assert_eq!(rig.status(0), status::OK);
    let bytes = image.bytes();
    assert_eq!(bytes[4096..8192], [0; 4096]);
    assert_eq!(bytes[..4096], [1; 4096]);
    assert_eq!(bytes[8192..8200], [1; 8]);

    let disk = open(&image, "");
    let before = image.allocated();
    let mut rig = Rig::new(disk, unlimited(), |mem, mock| {
        range(mem, 256, 1024, request::RANGE_UNMAP);
        request(mem, mock, 0, types::WRITE_ZEROES, 0, (DATA, 16));
    });
    rig.queue.process();
    assert_eq!(rig.status(0), status::OK);
    assert!(image.allocated() < before);
    assert_eq!(image.bytes()[128 << 10..640 << 10], vec![0u8; 512 << 10]);
}

#[test]
fn bad_range_flags_are_unsupported_and_long_ranges_fail() {
    let image = Image::new(1 << 20);
    let mut rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        range(mem, 0, 8, request::RANGE_UNMAP);
        request(mem, mock, 0, types::DISCARD, 0, (DATA, 16));
    });
    rig.queue.process();
    assert_eq!(rig.status(0), status::UNSUPP, "discard takes no unmap flag");
    let mut rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        range(mem, 0, 4096, 0);
        request(mem, mock, 0, types::WRITE_ZEROES, 0, (DATA, 16));
    });
    rig.queue.process();
    assert_eq!(rig.status(0), status::IOERR, "past the end");
}

#[test]
fn malformed_chains_get_ioerr_or_an_empty_used_entry() {
    let image = Image::new(1 << 20);
    let mut rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        // No writable byte at all: nowhere to put a status.
        write_header(mem, HEADER, types::IN, 0);
        mock.add_desc_chains(&[desc(HEADER, 16, 0, 0)], 0).unwrap();
        // Data outside guest memory: IOERR in the status byte.
        write_header(mem, HEADER + 16, types::IN, 0);
        mock.add_desc_chains(
            &[
                desc(HEADER + 16, 16, NEXT, 2),
                desc(0x7fff_0000, 4096, WRITE | NEXT, 3),
                desc(STATUS + 1, 1, WRITE, 0),
            ],
            1,
        )
        .unwrap();
        // A descriptor loop: the chain ends where the queue's size says.
        mock.add_desc_chains(
            &[
                desc(HEADER, 16, NEXT, 5),
                desc(STATUS + 4, 1, WRITE | NEXT, 4),
            ],
            4,
        )
        .unwrap();
    });
    rig.queue.process();
    assert_eq!(rig.used_count(), 3);
    assert_eq!(rig.used(0), (0, 0));
    assert_eq!(rig.used(1), (1, 1));
    assert_eq!(rig.status(1), status::IOERR);
    assert_eq!(rig.used(2).0, 4);
    assert_eq!(rig.queue.metrics().invalid_reqs_count.get(), 3);
}

#[test]
fn rate_limited_queue_waits_for_its_timer_and_drops_nothing() {
    let image = Image::new(1 << 20);
    let ops = TokenBucketConfig {
        size: 2,
        refill: Duration::from_millis(50),
        one_time_burst: 0,
    };
    let limiter = RateLimiter::new(None, Some(ops)).unwrap();
    let mut rig = Rig::new(open(&image, ""), limiter, |mem, mock| {
        for i in 0..5 {
            request(mem, mock, i * 3, types::IN, u64::from(i), (DATA, 512));
        }
    });
    rig.queue.process();
    assert_eq!(rig.used_count(), 2, "the bucket holds two requests");
    rig.queue.process();
    assert_eq!(rig.used_count(), 2, "a kick while blocked does nothing");
    let mut completed = 2;
    for _ in 0..100 {
        // Wait for the timer as the worker would.
        let mut pfd = libc::pollfd {
            fd: rig.queue.timer_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5000) }, 1, "timer fired");
        rig.queue.on_timer();
        completed = rig.used_count();
        if completed == 5 {
            break;
        }
    }
    assert_eq!(completed, 5);
    for i in 0..5 {
        assert_eq!(rig.status(i * 3), status::OK);
    }
    let m = rig.queue.metrics();
    assert!(m.rate_limiter_throttled_events.get() >= 2);
    assert!(m.rate_limiter_event_count.get() >= 1);
    assert_eq!(m.read_count.get(), 5);
}

#[test]
fn direct_disks_take_aligned_and_unaligned_guest_buffers() {
    let image = Image::new(1 << 20);
    let Ok(mut disk) = Disk::open(&image.config(",direct=on")) else {
        // The temporary directory's file system has no O_DIRECT (tmpfs).
        eprintln!("skipped: no O_DIRECT here");
        return;
    };
    let align = DirectAlign {
        memory: 4096,
        offset: 4096,
    };
    disk.force_direct_align(align);
    let mut rig = Rig::new(disk, unlimited(), |mem, mock| {
        let pattern: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        mem.write_slice(&pattern, GuestAddress(DATA + 3)).unwrap();
        // Unaligned guest buffer, aligned offset: the bounce buffer.
        request(mem, mock, 0, types::OUT, 8, (DATA + 3, 8192));
        // Aligned everything: straight to the file.
        request(mem, mock, 3, types::IN, 8, (DATA + 0x4000, 8192));
        // Offset that is not a multiple of the alignment: the buffered fd.
        request(mem, mock, 6, types::IN, 9, (DATA + 0x8001, 512));
    });
    rig.queue.process();
    assert_eq!(
        [rig.status(0), rig.status(3), rig.status(6)],
        [0, 0, 0],
        "{align:?}"
    );
    let expected: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; 8192];
    rig.mem
        .read_slice(&mut back, GuestAddress(DATA + 0x4000))
        .unwrap();
    assert_eq!(back, expected);
    let mut part = vec![0u8; 512];
    rig.mem
        .read_slice(&mut part, GuestAddress(DATA + 0x8001))
        .unwrap();
    assert_eq!(part, expected[512..1024]);
    assert_eq!(image.bytes()[4096..4096 + 8192], expected[..]);
}

/// A ready 16-entry queue built from raw state, with the available ring
/// at 0x2000 showing index `avail_idx`, for drivers that break the rules.
fn raw_queue(
    avail_idx: u16,
    used_ring: u64,
    next_used: u16,
    event_idx: bool,
) -> (GuestMemoryMmap, Queue) {
    let mem = mem();
    mem.write_obj(avail_idx, GuestAddress(0x2002)).unwrap();
    let state = virtio_queue::QueueState {
        max_size: 16,
        size: 16,
        ready: true,
        desc_table: 0x1000,
        avail_ring: 0x2000,
        used_ring,
        next_avail: 0,
        next_used,
        event_idx_enabled: event_idx,
    };
    (mem, Queue::try_from(state).unwrap())
}

#[test]
fn used_ring_on_top_of_the_available_ring_cannot_keep_the_worker_forever() {
    // Each completion bumps the used index, which is also the available
    // index: a driver that never stops submitting.
    let (mem, queue) = raw_queue(1, 0x2000, 1, false);
    let image = Image::new(4096);
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let kick = EventFd::new(EFD_NONBLOCK).unwrap();
    let mut block = BlockQueue::new(queue, mem, irq, Arc::new(open(&image, "")), unlimited())
        .resume_with(kick.try_clone().unwrap());
    block.process();
    assert_eq!(
        kick.read().unwrap(),
        1,
        "the worker comes back for the rest"
    );
}

#[test]
fn a_ring_of_bad_heads_logs_a_few_lines_not_one_per_entry() {
    // Every entry names descriptor 0xffff, past the 16-entry table: each
    // gets a used entry the queue refuses, once a warning apiece.
    let (mem, queue) = raw_queue(16, 0x3000, 0, false);
    for i in 0..16 {
        mem.write_obj(0xffffu16, GuestAddress(0x2004 + 2 * i))
            .unwrap();
    }
    let image = Image::new(4096);
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let mut block = BlockQueue::new(queue, mem, irq, Arc::new(open(&image, "")), unlimited());
    let lines = crate::log_limit::test_support::warnings_of(|| block.process());
    assert!(lines <= crate::log_limit::BURST as usize, "{lines} lines");
}

#[test]
fn an_available_index_out_of_range_ends_the_pass() {
    // avail.idx - next_avail > queue size: the queue refuses to pop, yet
    // the index differs from where the device stopped.
    let (mem, queue) = raw_queue(100, 0x3000, 0, true);
    let image = Image::new(4096);
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let mut block = BlockQueue::new(queue, mem, irq, Arc::new(open(&image, "")), unlimited());
    block.process();
}

/// Completion moderation that never ends a hold by itself: the test
/// fires its timer.
pub(super) fn moderated(mut rig: Rig) -> Rig {
    let config = ModerationConfig {
        hold: Hold::WhileBusy {
            max: Duration::from_secs(60),
        },
        window: Duration::from_secs(60),
        max_held: 3,
        backoff: 1,
    };
    rig.queue = rig.queue.with_moderation(Moderation::new(config).unwrap());
    rig
}

#[test]
fn completions_in_a_stream_share_an_interrupt() {
    let image = Image::new(1 << 20);
    let mut avail_idx = 0;
    let rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        for i in 0..6u16 {
            let data = (DATA + u64::from(i) * 0x1000, 512);
            request(mem, mock, i * 3, types::IN, u64::from(i), data);
        }
        avail_idx = mock.avail_addr().0 + 2;
    });
    let mut rig = moderated(rig);
    assert!(rig.queue.moderation_fd().is_some());
    // The guest makes its requests visible one at a time.
    let submit = |rig: &mut Rig, n: u16| {
        rig.mem.write_obj(n, GuestAddress(avail_idx)).unwrap();
        rig.queue.process();
        assert_eq!(rig.used_count(), n, "served at once");
        rig.irq.take_status()
    };
    assert_eq!(submit(&mut rig, 1), INT_VRING, "the first at once");
    assert_eq!(submit(&mut rig, 2), 0, "the second waits");
    assert_eq!(submit(&mut rig, 3), 0, "and so does the third");
    rig.queue.on_moderation_timer();
    assert_eq!(rig.irq.take_status(), INT_VRING, "one for both");
    rig.queue.on_moderation_timer();
    assert_eq!(rig.irq.take_status(), 0, "nothing held: no interrupt");
    assert_eq!(submit(&mut rig, 4), 0);
    assert_eq!(submit(&mut rig, 5), 0);
    assert_eq!(submit(&mut rig, 6), INT_VRING, "three held go at once");
    assert_eq!((0..6).map(|i| rig.status(i * 3)).max(), Some(0));
}

/// An image of `size` bytes of ones whose file system (as far as the disk
/// knows) can neither punch holes nor zero ranges: zeros must be written.
pub(super) fn ones_without_fallocate(size: usize) -> (Image, Disk) {
    let image = Image::new(0);
    std::fs::write(&image.0, vec![1u8; size]).unwrap();
    let mut disk = open(&image, "");
    disk.forbid_fallocate_zeroing();
    (image, disk)
}

pub(super) fn zeroed_bytes(image: &Image) -> usize {
    image.bytes().iter().filter(|&&b| b == 0).count()
}

/// The rig's queue signals `kick` when it wants to come back.
pub(super) fn with_kick(mut rig: Rig) -> (Rig, EventFd) {
    let kick = EventFd::new(EFD_NONBLOCK).unwrap();
    rig.queue = rig.queue.resume_with(kick.try_clone().unwrap());
    (rig, kick)
}

#[test]
fn written_zeros_go_a_step_per_wake_and_hold_the_queue() {
    let size = 16 << 20;
    let (image, disk) = ones_without_fallocate(size);
    let rig = Rig::new(disk, unlimited(), |mem, mock| {
        range(mem, 0, (size / 512) as u32, 0);
        request(mem, mock, 0, types::WRITE_ZEROES, 0, (DATA, 16));
        request(mem, mock, 3, types::IN, 0, (DATA + 0x1000, 512));
    });
    let (mut rig, kick) = with_kick(rig);
    let step = ranges::ZERO_STEP as usize;
    let steps = size / step;
    for done in 1..steps {
        rig.queue.process();
        assert_eq!(rig.used_count(), 0, "step {done}: not done yet");
        assert_eq!(zeroed_bytes(&image), done * step);
        assert_eq!(kick.read().unwrap(), 1, "the worker comes back");
    }
    rig.queue.process();
    assert_eq!(zeroed_bytes(&image), size);
    assert_eq!(rig.used_count(), 2, "then the queue goes on");
    assert_eq!([rig.status(0), rig.status(3)], [status::OK, status::OK]);
    assert!(kick.read().is_err(), "nothing left to come back for");
}

#[test]
fn written_zeros_are_charged_as_writes() {
    let (image, disk) = ones_without_fallocate(4 << 20);
    let bandwidth = TokenBucketConfig {
        size: 1 << 20,
        refill: Duration::from_secs(60),
        one_time_burst: 0,
    };
    let limiter = RateLimiter::new(Some(bandwidth), None).unwrap();
    let rig = Rig::new(disk, limiter, |mem, mock| {
        range(mem, 0, (4 << 20) / 512, 0);
        request(mem, mock, 0, types::WRITE_ZEROES, 0, (DATA, 16));
    });
    let (mut rig, kick) = with_kick(rig);
    rig.queue.process();
    assert_eq!(zeroed_bytes(&image), 1 << 20, "a bucket's worth");
    assert_eq!(kick.read().unwrap(), 1);
    rig.queue.process();
    rig.queue.process();
    assert_eq!(zeroed_bytes(&image), 1 << 20, "then the bucket is empty");
    assert!(kick.read().is_err(), "the limiter's timer brings it back");
    assert_eq!(rig.used_count(), 0);
}

#[test]
fn a_reset_drops_the_zeros_left_to_write() {
    let (image, disk) = ones_without_fallocate(16 << 20);
    let rig = Rig::new(disk, unlimited(), |mem, mock| {
        range(mem, 0, (16 << 20) / 512, 0);
        request(mem, mock, 0, types::WRITE_ZEROES, 0, (DATA, 16));
    });
    let (mut rig, _kick) = with_kick(rig);
    rig.queue.process();
    // A reset drops the worker, and the queue with it.
    drop(rig.queue);
    assert_eq!(zeroed_bytes(&image), ranges::ZERO_STEP as usize);
}

#[test]
fn tmpfs_writes_zeros_when_it_cannot_zero_a_range() {
    // tmpfs punches holes but has no FALLOC_FL_ZERO_RANGE.
    let path = std::path::Path::new("/dev/shm").join(format!("blk-{}.img", std::process::id()));
    if std::fs::write(&path, vec![1u8; 8 << 20]).is_err() {
        eprintln!("skipped: no /dev/shm");
        return;
    }
    let image = Image(path);
    let rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        range(mem, 0, (8 << 20) / 512, 0);
        request(mem, mock, 0, types::WRITE_ZEROES, 0, (DATA, 16));
    });
    let (mut rig, kick) = with_kick(rig);
    rig.queue.process();
    assert_eq!(rig.used_count(), 0, "one step at a time");
    assert_eq!(kick.read().unwrap(), 1);
    rig.queue.process();
    assert_eq!(rig.used_count(), 1);
    assert_eq!(image.bytes(), vec![0u8; 8 << 20]);
}

#[test]
fn discard_and_write_zeroes_are_operations() {
    let image = Image::new(1 << 20);
    let ops = TokenBucketConfig {
        size: 2,
        refill: Duration::from_secs(60),
        one_time_burst: 0,
    };
    let limiter = RateLimiter::new(None, Some(ops)).unwrap();
    let mut rig = Rig::new(open(&image, ""), limiter, |mem, mock| {
        range(mem, 0, 8, 0);
        request(mem, mock, 0, types::DISCARD, 0, (DATA, 16));
        request(mem, mock, 3, types::WRITE_ZEROES, 0, (DATA, 16));
        request(mem, mock, 6, types::DISCARD, 0, (DATA, 16));
    });
    rig.queue.process();
    assert_eq!(rig.used_count(), 2, "two operations in the bucket");
}

#[test]
fn a_bad_range_fails_the_request_before_any_range_is_done() {
    let image = Image::new(0);
    std::fs::write(&image.0, vec![1u8; 1 << 20]).unwrap();
    let mut rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        range(mem, 0, 8, 0);
        mem.write_obj(0u64, GuestAddress(DATA + 16)).unwrap();
        mem.write_obj(8u32, GuestAddress(DATA + 24)).unwrap();
        mem.write_obj(0x80u32, GuestAddress(DATA + 28)).unwrap();
        request(mem, mock, 0, types::WRITE_ZEROES, 0, (DATA, 32));
    });
    rig.queue.process();
    assert_eq!(rig.status(0), status::UNSUPP);
    assert_eq!(zeroed_bytes(&image), 0);
}
