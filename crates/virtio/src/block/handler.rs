//! Serving the request queue: parse, rate-limit, execute, complete.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::BlockMetrics;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use super::disk::Disk;
use super::ranges::{RangeWork, Step, ZERO_STEP};
use super::request::{self, Malformed, Request, RequestType, SECTOR_SIZE};
use crate::moderation::{Hold, Moderation, ModerationConfig};
use crate::rate_limiter::{LimiterUpdate, RateLimiter};
use crate::{GuestMemoryMmap, SavedQueue, VirtioInterrupt};

/// Status bytes (`VIRTIO_BLK_S_*`).
pub mod status {
    pub const OK: u8 = 0;
    pub const IOERR: u8 = 1;
    pub const UNSUPP: u8 = 2;
}

/// Completions between interrupt checks while a long batch runs, so the
/// guest can reap early requests while later ones are still served.
const SIGNAL_EVERY: u32 = 64;
/// Requests served per wake-up before the worker goes back to its other
/// events (a reset waits for it): a guest whose used ring overlaps its
/// available ring could otherwise keep one pass going forever.
const MAX_BATCH: u32 = 1024;

/// Completion interrupt moderation ([`crate::moderation`]), unless
/// `moderation=off`: a completion within `window` of the last interrupt
/// waits while more keep coming (a guest with several requests in flight
/// submits the next ones meanwhile), up to `max`, so one interrupt covers
/// several. The wait follows the stream's own pace, so a fast disk is not
/// held back; one request at a time is not held for long (backoff).
pub const MODERATION: ModerationConfig = ModerationConfig {
    hold: Hold::WhileBusy {
        max: Duration::from_millis(1),
    },
    window: Duration::from_millis(2),
    max_held: 32,
    backoff: 8,
};

/// The byte offset of `len` bytes at `sector`, if they are on the disk.
pub(super) fn on_disk(disk: &Disk, sector: u64, len: u64) -> Option<u64> {
    let offset = sector.checked_mul(SECTOR_SIZE)?;
    let end = offset.checked_add(len)?;
    // A trailing partial sector is not part of the disk the guest sees.
    (end <= disk.size() / SECTOR_SIZE * SECTOR_SIZE).then_some(offset)
}

fn io_status(what: &str, result: std::io::Result<()>) -> u8 {
    match result {
        Ok(()) => status::OK,
        Err(e) => {
            tracing::debug!("virtio-blk: {what} failed: {e}");
            status::IOERR
        }
    }
}

/// What [`execute`] did with a request.
#[derive(Debug)]
pub enum Outcome {
    /// Done: the status, and how many data bytes the device wrote into
    /// the guest's buffers.
    Done(u8, u32),
    /// A discard or write-zeroes request, checked, to be carried out with
    /// [`RangeWork::run`].
    Ranges(RangeWork),
}

/// Carries out a request, or readies a discard or write-zeroes request to
/// be carried out a step at a time.
pub fn execute(disk: &Disk, request: &Request) -> Outcome {
    let writes = matches!(
        request.kind,
        RequestType::Out | RequestType::Discard | RequestType::WriteZeroes
    );
    if writes && disk.readonly() {
        return Outcome::Done(status::IOERR, 0);
    }
    let (status, len) = match request.kind {
        RequestType::In => {
            let len = request.data_len();
            let Some(offset) = on_disk(disk, request.sector, len) else {
                return Outcome::Done(status::IOERR, 0);
            };
            match io_status("read", disk.read(offset, &request.data)) {
                status::OK => (status::OK, u32::try_from(len).unwrap_or(u32::MAX)),
                s => (s, 0),
            }
        }
        RequestType::Out => match on_disk(disk, request.sector, request.data_len()) {
            Some(offset) => (io_status("write", disk.write(offset, &request.data)), 0),
            None => (status::IOERR, 0),
        },
        RequestType::Flush => (io_status("flush", disk.flush()), 0),
        RequestType::GetId => {
            let mut id: &[u8] = disk.id();
            let mut written = 0u32;
            for slice in &request.data {
                let n = slice.len().min(id.len());
                if let Ok(part) = slice.subslice(0, n) {
                    part.copy_from(&id[..n]);
                }
                id = &id[n..];
                written += u32::try_from(n).unwrap_or(0);
            }
            (status::OK, written)
        }
        RequestType::Discard | RequestType::WriteZeroes => {
            return match RangeWork::new(disk, request) {
                Ok(work) => Outcome::Ranges(work),
                Err(status) => Outcome::Done(status, 0),
            }
        }
        RequestType::Unsupported(kind) => {
            tracing::debug!(kind, "virtio-blk: unsupported request type");
            (status::UNSUPP, 0)
        }
    };
    Outcome::Done(status, len)
}

/// Counts a request [`execute`] finished with `status`.
fn count(metrics: &BlockMetrics, request: &Request, status: u8) {
    match (request.kind, status) {
        (RequestType::In, status::OK) => {
            metrics.read_count.inc();
            metrics.read_bytes.add(request.data_len());
        }
        (RequestType::Out, status::OK) => {
            metrics.write_count.inc();
            metrics.write_bytes.add(request.data_len());
        }
        (RequestType::Flush, status::OK) => metrics.flush_count.inc(),
        (RequestType::Unsupported(_), _) => metrics.invalid_reqs_count.inc(),
        (_, status::IOERR) => metrics.execute_fails.inc(),
        _ => {}
    }
}

/// What a request costs the rate limiter's bandwidth when it starts, in
/// bytes. Every request is also one operation; zeros written for a
/// write-zeroes request are charged as they are written.
fn cost(request: &Request) -> u64 {
    match request.kind {
        RequestType::In | RequestType::Out => request.data_len(),
        _ => 0,
    }
}

/// A discard or write-zeroes request carried out over several wakes, on
/// the disk it started on (a new one may take its place meanwhile).
struct InProgress {
    head: u16,
    status: GuestAddress,
    work: RangeWork,
    disk: Arc<Disk>,
}

/// The device side of the request queue, run on the device's worker.
pub struct BlockQueue {
    queue: Queue,
    mem: GuestMemoryMmap,
    irq: Arc<dyn VirtioInterrupt>,
    disk: Arc<Disk>,
    limiter: RateLimiter,
    /// The queue's own eventfd, to come back after a full batch.
    kick: Option<EventFd>,
    /// Completion interrupt moderation; none: every interrupt at once.
    moderation: Option<Moderation>,
    /// A request that writes zeros a step per wake; the queue waits for it.
    in_progress: Option<InProgress>,
    metrics: Arc<BlockMetrics>,
}

impl BlockQueue {
    pub fn new(
        queue: Queue,
        mem: GuestMemoryMmap,
        irq: Arc<dyn VirtioInterrupt>,
        disk: Arc<Disk>,
        limiter: RateLimiter,
    ) -> Self {
        BlockQueue {
            queue,
            mem,
            irq,
            disk,
            limiter,
            kick: None,
            moderation: None,
            in_progress: None,
            metrics: Arc::default(),
        }
    }

    /// Counts in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<BlockMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// What the queue counted.
    pub fn metrics(&self) -> &BlockMetrics {
        &self.metrics
    }

    /// The guest kicked the queue.
    pub fn on_queue_event(&mut self) {
        self.metrics.queue_event_count.inc();
        self.process();
    }

    /// Moderates the completion interrupts with `moderation`.
    pub fn with_moderation(mut self, moderation: Moderation) -> Self {
        self.moderation = Some(moderation);
        self
    }

    /// The moderation timer, if moderated: when readable, call
    /// [`BlockQueue::on_moderation_timer`].
    pub fn moderation_fd(&self) -> Option<RawFd> {
        self.moderation.as_ref().map(Moderation::timer_fd)
    }

    /// The moderation timer fired: a held interrupt goes now.
    pub fn on_moderation_timer(&mut self) {
        if self.moderation.as_mut().is_some_and(Moderation::on_timer) {
            self.signal_if_needed();
        }
    }

    /// Makes a pass that hits [`MAX_BATCH`] signal `kick` (the queue's
    /// eventfd), so the worker comes back for the rest.
    pub fn resume_with(mut self, kick: EventFd) -> Self {
        self.kick = Some(kick);
        self
    }

    /// The rate limiter's timer: readable when a blocked queue may go on.
    pub fn timer_fd(&self) -> RawFd {
        self.limiter.as_raw_fd()
    }

    /// The rate limiter's timer fired.
    pub fn on_timer(&mut self) {
        self.metrics.rate_limiter_event_count.inc();
        self.limiter.on_timer();
        self.process();
    }

    /// A run-time update, between two requests: the requests after it go
    /// to `disk` (one in progress ends on the disk it started on) under
    /// the new limits.
    pub fn update(&mut self, disk: Option<Arc<Disk>>, limits: &LimiterUpdate) {
        if let Some(disk) = disk {
            self.disk = disk;
        }
        self.limiter.update(limits);
    }

    /// Where the queue stands, for a snapshot of the paused machine. An
    /// interrupt moderation holds back goes now, so that no completion
    /// waits for a timer the restored device will not have. A request in
    /// progress (a discard or write-zeroes over several wakes, which the
    /// queue waits for: it is the last one popped) goes back to the avail
    /// ring, to be served again from its start after a restore: both
    /// write the same result twice.
    pub fn save(&mut self) -> SavedQueue {
        if self.moderation.as_mut().is_some_and(Moderation::flush) {
            self.signal_if_needed();
        }
        let mut saved = SavedQueue::from(&self.queue);
        if self.in_progress.is_some() {
            saved.next_avail = saved.next_avail.wrapping_sub(1);
        }
        saved
    }

    /// Interrupts the guest now, if its driver asked, ending any hold.
    fn signal_if_needed(&mut self) {
        if let Some(m) = &mut self.moderation {
            m.flush();
        }
        if self.queue.needs_notification(&self.mem).unwrap_or(true) {
            self.irq.signal_used_queue(0);
            if let Some(m) = &mut self.moderation {
                m.signalled(Instant::now());
            }
        }
    }

    /// A pass completed `served` requests: interrupts the guest now, or
    /// when moderation says.
    fn completed(&mut self, served: u32) {
        let go = match &mut self.moderation {
            None => true,
            Some(m) => m.on_used(served as usize, Instant::now()),
        };
        if go {
            self.signal_if_needed();
        }
    }

    fn complete(&mut self, head: u16, status: Option<GuestAddress>, byte: u8, len: u32) {
        let len = match status {
            Some(at) if self.mem.write_obj(byte, at).is_ok() => len.saturating_add(1),
            _ => 0,
        };
        if let Err(e) = self.queue.add_used(&self.mem, head, len) {
            crate::log_limit::warn_limited!("virtio-blk: cannot add to the used ring: {e}");
        }
    }

    /// Comes back for more on the next wake, if there is a kick to do so.
    fn kick(&self) {
        if let Some(kick) = &self.kick {
            // A lost kick leaves the rest for the guest's next one.
            let _ = kick.write(1);
        }
    }

    /// How many bytes of zeros one step writes: a step never asks for
    /// more than the bandwidth bucket holds, so it is charged in full.
    fn zero_step(&self) -> u64 {
        self.limiter
            .bandwidth_burst()
            .map_or(ZERO_STEP, |burst| burst.clamp(SECTOR_SIZE, ZERO_STEP))
    }

    /// Goes on with the request in progress, if any; true once there is
    /// none (it completed), false while it waits for the next wake.
    fn resume(&mut self) -> bool {
        let Some(mut p) = self.in_progress.take() else {
            return true;
        };
        let step = self.zero_step();
        let limiter = &mut self.limiter;
        match p.work.run(&p.disk, step, |n| limiter.consume_bytes(n)) {
            Step::Finished(byte) => {
                self.complete(p.head, Some(p.status), byte, 0);
                true
            }
            Step::Pending => {
                self.in_progress = Some(p);
                // A blocked limiter comes back through its timer.
                if !self.limiter.is_blocked() {
                    self.kick();
                }
                false
            }
        }
    }

    /// Serves requests until the queue is empty or the rate limiter says
    /// stop; a request the limiter refuses stays in the queue, untouched,
    /// for when the timer fires. A request that writes zeros holds the
    /// rest of the queue until it is done, a step per wake.
    pub fn process(&mut self) {
        if self.limiter.is_blocked() {
            return;
        }
        let mut served = 0u32;
        if self.in_progress.is_some() {
            if !self.resume() {
                return;
            }
            served = 1;
        }
        let mut before = served;
        'passes: loop {
            // Notifications off while draining; back on, then look again
            // for requests that slipped in between (event-index protocol).
            if self.queue.disable_notification(&self.mem).is_err() {
                // What was served still gets its interrupt.
                break;
            }
            while let Some(chain) = self.queue.pop_descriptor_chain(&self.mem) {
                let head = chain.head_index();
                match request::parse(&self.mem, chain) {
                    Ok(request) => {
                        if !self.limiter.consume(cost(&request)) {
                            self.metrics.rate_limiter_throttled_events.inc();
                            self.queue.go_to_previous_position();
                            self.signal_if_needed();
                            return;
                        }
                        let status = request.status;
                        match execute(&self.disk, &request) {
                            Outcome::Done(byte, len) => {
                                count(&self.metrics, &request, byte);
                                self.complete(head, Some(status), byte, len)
                            }
                            Outcome::Ranges(work) => {
                                self.in_progress = Some(InProgress {
                                    head,
                                    status,
                                    work,
                                    disk: self.disk.clone(),
                                });
                                if !self.resume() {
                                    break 'passes;
                                }
                            }
                        }
                    }
                    Err(Malformed { error, status }) => {
                        tracing::debug!("virtio-blk: malformed request: {error}");
                        self.metrics.invalid_reqs_count.inc();
                        self.complete(head, status, status::IOERR, 0);
                    }
                }
                served += 1;
                if served.is_multiple_of(SIGNAL_EVERY) {
                    self.signal_if_needed();
                }
                if served >= MAX_BATCH {
                    self.kick();
                    break 'passes;
                }
            }
            match self.queue.enable_notification(&self.mem) {
                // More came in while notifications were off; but a pass
                // that found nothing means an available index the queue
                // refuses (more entries than its size): wait for a kick.
                Ok(true) if served > before => before = served,
                Ok(true) => {
                    tracing::debug!("virtio-blk: the available ring index is invalid");
                    break;
                }
                _ => break,
            }
        }
        self.completed(served);
    }
}
