//! The receive and transmit loops of one NIC: frames between the TAP and
//! the guest's queues, rate limited, with every chain checked.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::NetMetrics;
use virtio_queue::{Queue, QueueT};

use super::frame::{self, check_tx_header, read_tx_chain, rx_chain_capacity, write_rx_chain};
use super::{features, Tap, HEADER_LEN, MAX_PACKET_LEN, RX_QUEUE, TX_QUEUE};
use crate::moderation::{Hold, Moderation, ModerationConfig};
use crate::rate_limiter::{LimiterUpdate, RateLimiter};
use crate::{GuestMemoryMmap, SavedQueue, VirtioInterrupt, Wake};
use vmm_sys_util::eventfd::EventFd;

/// Extra worker sources, in the order the device registers them.
pub const TAP_SOURCE: usize = 0;
pub const RX_TIMER_SOURCE: usize = 1;
pub const TX_TIMER_SOURCE: usize = 2;
pub const RX_MODERATION_SOURCE: usize = 3;
pub const TX_MODERATION_SOURCE: usize = 4;

/// Most frames taken from the TAP per wake-up, so a flood of received
/// frames cannot hold off transmission (the TAP stays readable, so the
/// worker comes back to it).
const RX_BATCH: usize = 64;

/// Most transmit chains taken per wake-up. A guest can keep its transmit
/// ring full for ever (or make it refill itself with overlapping rings);
/// past this the worker kicks itself and serves its other events first.
const TX_BATCH: usize = 128;

/// Interrupt moderation ([`crate::moderation`]) of both queues, unless
/// `moderation=off`: a frame within `window` of the last interrupt waits
/// up to `hold` for more, unless `max_held` buffers (half the ring, so the
/// guest never runs dry or keeps a full transmit ring stopped while it
/// waits) already do. A guest receiving a TCP stream takes fewer
/// interrupts and receives faster (the net bench in docs/benchmarks.md).
pub const MODERATION: ModerationConfig = ModerationConfig {
    hold: Hold::Fixed(Duration::from_micros(300)),
    window: Duration::from_millis(2),
    max_held: 128,
    backoff: 8,
};

/// Longest a transmit completion waits to go with a receive interrupt
/// while the guest receives a stream. A receiving guest sends mostly
/// acknowledgements, and frees their buffers as it polls for received
/// frames anyway (Linux's virtio_net does); interrupting for each one on
/// its own doubled a receiving guest's interrupts (the net bench in
/// docs/benchmarks.md). A guest that sends and receives alike gets its
/// completions with the next receive interrupt, this long at most.
pub const TX_RIDE_MAX: Duration = Duration::from_millis(2);

/// Where frames come from and go: the TAP, or a fake in tests.
pub trait FrameIo {
    /// Reads one frame with its header; `WouldBlock` when none is queued.
    fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
    /// Writes one frame with its header.
    fn write_frame(&mut self, buf: &[u8]) -> std::io::Result<usize>;
}

impl FrameIo for Arc<Tap> {
    fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read(buf)
    }

    fn write_frame(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write(buf)
    }
}

/// Frame counts, for tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub rx_frames: u64,
    pub rx_dropped: u64,
    pub tx_frames: u64,
    pub tx_dropped: u64,
}

/// What became of the frame waiting for the guest.
enum Delivery {
    Delivered,
    /// The guest has no buffers: keep the frame, wait for a kick.
    NoBuffers,
    /// The frame cannot be delivered (too large for the buffer, or a
    /// malformed buffer): it is gone.
    Dropped,
}

/// A NIC's queues and the state of its two directions.
pub struct NetQueues<T: FrameIo> {
    io: T,
    mem: GuestMemoryMmap,
    irq: Arc<dyn VirtioInterrupt>,
    rx: Queue,
    tx: Queue,
    acked: u64,
    rx_limiter: RateLimiter,
    tx_limiter: RateLimiter,
    rx_buf: Box<[u8]>,
    /// Length of the frame in `rx_buf` that waits for guest buffers or
    /// for the rate limiter.
    rx_pending: Option<usize>,
    /// The pending frame went through the rate limiter already.
    rx_charged: bool,
    /// Reading the TAP failed: stop watching it until the guest kicks the
    /// receive queue.
    io_failed: bool,
    tx_buf: Box<[u8]>,
    /// A transmit chain read into `tx_buf` (head index, length) that
    /// waits for the rate limiter.
    tx_pending: Option<(u16, usize)>,
    /// The transmit queue's eventfd, signalled when a pass stops at
    /// [`TX_BATCH`] so the worker comes back.
    tx_kick: Option<EventFd>,
    /// Receive and transmit interrupt moderation; none: every interrupt
    /// goes at once.
    moderation: Option<(Moderation, Moderation)>,
    stats: NetStats,
    metrics: Arc<NetMetrics>,
}

impl<T: FrameIo> NetQueues<T> {
    /// `queues` are rx then tx; `acked` the features the driver accepted.
    pub fn new(
        io: T,
        mem: GuestMemoryMmap,
        irq: Arc<dyn VirtioInterrupt>,
        rx: Queue,
        tx: Queue,
        acked: u64,
        limiters: (RateLimiter, RateLimiter),
    ) -> Self {
        NetQueues {
            io,
            mem,
            irq,
            rx,
            tx,
            acked,
            rx_limiter: limiters.0,
            tx_limiter: limiters.1,
            rx_buf: vec![0; MAX_PACKET_LEN].into_boxed_slice(),
            rx_pending: None,
            rx_charged: false,
            io_failed: false,
            tx_buf: vec![0; MAX_PACKET_LEN].into_boxed_slice(),
            tx_pending: None,
            tx_kick: None,
            moderation: None,
            stats: NetStats::default(),
            metrics: Arc::default(),
        }
    }

    /// Counts in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<NetMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// What the NIC counted.
    pub fn metrics(&self) -> &NetMetrics {
        &self.metrics
    }

    /// Makes a transmit pass that stops at [`TX_BATCH`] signal `kick` (the
    /// transmit queue's eventfd) to be resumed.
    pub fn with_tx_kick(mut self, kick: EventFd) -> Self {
        self.tx_kick = Some(kick);
        self
    }

    /// Moderates the receive and transmit interrupts.
    pub fn set_moderation(&mut self, rx: Moderation, tx: Moderation) {
        self.moderation = Some((rx, tx));
    }

    /// The moderation timers, to wait on (rx, tx), if moderated.
    pub fn moderation_fds(&self) -> Option<(std::os::fd::RawFd, std::os::fd::RawFd)> {
        let (rx, tx) = self.moderation.as_ref()?;
        Some((rx.timer_fd(), tx.timer_fd()))
    }

    /// The frame source and sink (tests feed and inspect it).
    pub fn io_mut(&mut self) -> &mut T {
        &mut self.io
    }

    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// New limits for either direction, between two frames: a direction
    /// blocked under the old ones tries again at once.
    pub fn update_limits(&mut self, rx: &LimiterUpdate, tx: &LimiterUpdate) {
        self.rx_limiter.update(rx);
        self.tx_limiter.update(tx);
    }

    /// The rate limiters' timers, to wait on (rx, tx).
    pub fn timer_fds(&self) -> (std::os::fd::RawFd, std::os::fd::RawFd) {
        use std::os::fd::AsRawFd;
        (self.rx_limiter.as_raw_fd(), self.tx_limiter.as_raw_fd())
    }

    /// True while the TAP should wake the worker: not while a frame waits
    /// for guest buffers or the rate limiter (the TAP stays readable and
    /// would wake it in a loop).
    pub fn wants_io(&self) -> bool {
        self.rx_pending.is_none() && !self.io_failed
    }

    /// Does what a wake-up of the worker asks.
    pub fn handle(&mut self, wake: Wake) {
        let m = &self.metrics;
        match wake {
            Wake::Queue(RX_QUEUE) => m.rx_queue_event_count.inc(),
            Wake::Queue(TX_QUEUE) => m.tx_queue_event_count.inc(),
            Wake::Source(TAP_SOURCE) => m.rx_tap_event_count.inc(),
            Wake::Source(RX_TIMER_SOURCE) => m.rx_event_rate_limiter_count.inc(),
            Wake::Source(TX_TIMER_SOURCE) => m.tx_rate_limiter_event_count.inc(),
            _ => {}
        }
        match wake {
            Wake::Queue(RX_QUEUE) => {
                // New receive buffers: ours to fill without further kicks.
                let _ = self.rx.disable_notification(&self.mem);
                self.io_failed = false;
                self.process_rx();
            }
            Wake::Queue(TX_QUEUE) => self.process_tx(),
            Wake::Source(TAP_SOURCE) => self.process_rx(),
            Wake::Source(RX_TIMER_SOURCE) => {
                self.rx_limiter.on_timer();
                self.process_rx();
            }
            Wake::Source(TX_TIMER_SOURCE) => {
                self.tx_limiter.on_timer();
                self.process_tx();
            }
            Wake::Source(RX_MODERATION_SOURCE) => self.on_moderation_timer(RX_QUEUE),
            Wake::Source(TX_MODERATION_SOURCE) => self.on_moderation_timer(TX_QUEUE),
            // Updates reach the device, which calls `update_limits`.
            Wake::Queue(_) | Wake::Source(_) | Wake::Update | Wake::Save => {}
        }
    }

    /// Where both queues stand, for a snapshot of the paused machine (rx,
    /// tx). Interrupts moderation holds back go now, so that no completion
    /// waits for a timer the restored device will not have. A transmit
    /// chain waiting for the rate limiter (the last one popped) goes back
    /// to the avail ring, to be sent after a restore; a received frame
    /// waiting for guest buffers or the rate limiter took none, and is
    /// lost with the old process, as on a wire.
    pub fn save(&mut self) -> Vec<SavedQueue> {
        for queue in [RX_QUEUE, TX_QUEUE] {
            if self.moderation_of(queue).is_some_and(Moderation::flush) {
                self.signal(queue);
            }
        }
        let rx = SavedQueue::from(&self.rx);
        let mut tx = SavedQueue::from(&self.tx);
        if self.tx_pending.is_some() {
            tx.next_avail = tx.next_avail.wrapping_sub(1);
        }
        vec![rx, tx]
    }

    /// A moderation timer fired: the held interrupt goes now.
    fn on_moderation_timer(&mut self, queue: usize) {
        if self.moderation_of(queue).is_some_and(Moderation::on_timer) {
            self.signal(queue);
        }
    }

    /// Moves frames from the TAP to the guest until the TAP is empty, the
    /// guest has no buffers, the rate limiter says stop, or a batch is
    /// done; interrupts the guest if it asked.
    pub fn process_rx(&mut self) {
        let mut used = 0;
        let mut reads = 0;
        let mut out_of_buffers = false;
        loop {
            let len = match self.rx_pending {
                Some(len) => len,
                None => {
                    if reads == RX_BATCH || self.io_failed {
                        break;
                    }
                    reads += 1;
                    match self.io.read_frame(&mut self.rx_buf) {
                        Ok(n) if n > HEADER_LEN && n <= self.rx_buf.len() => {
                            self.metrics.rx_count.inc();
                            self.rx_pending = Some(n);
                            n
                        }
                        Ok(_) => {
                            self.metrics.rx_fails.inc();
                            self.stats.rx_dropped += 1;
                            continue;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => {
                            // Stop watching a TAP that fails (it would wake
                            // the worker in a loop); the guest's next
                            // receive kick, asked for here, tries again.
                            crate::log_limit::warn_limited!("virtio-net: cannot read the TAP: {e}");
                            self.metrics.tap_read_fails.inc();
                            self.io_failed = true;
                            let _ = self.rx.enable_notification(&self.mem);
                            break;
                        }
                    }
                }
            };
            if !self.rx_charged {
                if !self.rx_limiter.consume(len as u64) {
                    self.metrics.rx_rate_limiter_throttled.inc();
                    break;
                }
                self.rx_charged = true;
            }
            let delivery = self.deliver(len, &mut used);
            if matches!(delivery, Delivery::NoBuffers) {
                self.metrics.no_rx_avail_buffer.inc();
                out_of_buffers = true;
                break;
            }
            self.rx_pending = None;
            self.rx_charged = false;
            match delivery {
                Delivery::Delivered => {
                    self.metrics.rx_packets_count.inc();
                    self.metrics.rx_bytes_count.add(len as u64);
                    self.stats.rx_frames += 1;
                }
                _ => {
                    self.metrics.rx_fails.inc();
                    self.stats.rx_dropped += 1;
                }
            }
        }
        // A guest out of buffers refills them only after it hears of
        // the used ones: never keep it waiting then.
        self.used(RX_QUEUE, used, out_of_buffers);
    }

    /// A pass put `count` chains of `queue` in its used ring: interrupts
    /// the guest now, or when moderation says unless `urgent`. While the
    /// guest receives a stream, transmit completions ride on its next
    /// receive interrupt ([`TX_RIDE_MAX`]).
    fn used(&mut self, queue: usize, count: usize, urgent: bool) {
        let go = match self.moderation.as_mut() {
            None => count > 0,
            Some((rx, tx)) => {
                let now = Instant::now();
                let rides = queue == TX_QUEUE && !urgent && rx.in_stream(now);
                let m = if queue == RX_QUEUE { rx } else { tx };
                if urgent {
                    m.flush() || count > 0
                } else if rides {
                    m.ride(count, TX_RIDE_MAX, now)
                } else {
                    m.on_used(count, now)
                }
            }
        };
        if go {
            self.signal(queue);
        }
    }

    /// Interrupts the guest for `queue` if its driver asked.
    fn signal(&mut self, queue: usize) {
        let q = if queue == RX_QUEUE {
            &mut self.rx
        } else {
            &mut self.tx
        };
        if !q.needs_notification(&self.mem).unwrap_or(true) {
            return;
        }
        self.irq.signal_used_queue(queue);
        if let Some(m) = self.moderation_of(queue) {
            m.signalled(Instant::now());
        }
        // Held transmit completions go with a receive interrupt: on
        // virtio-mmio both share the one interrupt the guest takes.
        if queue == RX_QUEUE && self.moderation_of(TX_QUEUE).is_some_and(Moderation::flush) {
            self.signal(TX_QUEUE);
        }
    }

    fn moderation_of(&mut self, queue: usize) -> Option<&mut Moderation> {
        let (rx, tx) = self.moderation.as_mut()?;
        Some(if queue == RX_QUEUE { rx } else { tx })
    }

    /// Puts the frame of `len` bytes in `rx_buf` into receive buffers: one
    /// chain, or as many as it takes with mergeable buffers.
    fn deliver(&mut self, len: usize, used: &mut usize) -> Delivery {
        let mergeable = self.acked & features::MRG_RXBUF != 0;
        let start = self.rx.next_avail();
        let mut chains = Vec::new();
        let mut room = 0usize;
        let mut looked_again = false;
        while room < len {
            let Some(chain) = self.rx.pop_descriptor_chain(&self.mem) else {
                // Ask for a kick when buffers come, then look once more
                // for any added meanwhile.
                if !looked_again && matches!(self.rx.enable_notification(&self.mem), Ok(true)) {
                    looked_again = true;
                    continue;
                }
                self.rx.set_next_avail(start);
                return Delivery::NoBuffers;
            };
            match rx_chain_capacity(chain.clone(), &self.mem) {
                Ok(capacity) if capacity >= HEADER_LEN => {
                    room = room.saturating_add(capacity);
                    chains.push(chain);
                }
                result => {
                    // A malformed buffer: returned empty, and the frame is
                    // dropped with the buffers taken for it so far.
                    tracing::debug!("virtio-net: bad receive chain: {result:?}");
                    let heads = chains.iter().chain(Some(&chain)).map(|c| c.head_index());
                    for head in heads {
                        return_used(&mut self.rx, &self.mem, head, 0, used);
                    }
                    return Delivery::Dropped;
                }
            }
            if !mergeable {
                break;
            }
        }
        if room < len {
            // Larger than the guest's buffer: drop the frame, keep the buffer.
            self.rx.set_next_avail(start);
            return Delivery::Dropped;
        }
        let buffers = if mergeable {
            u16::try_from(chains.len()).unwrap_or(u16::MAX)
        } else {
            1
        };
        frame::set_num_buffers(&mut self.rx_buf[..len], buffers);
        let mut offset = 0;
        for chain in chains {
            let head = chain.head_index();
            let written = write_rx_chain(chain, &self.mem, &self.rx_buf[offset..len]).unwrap_or(0);
            offset += written;
            let written = u32::try_from(written).unwrap_or(u32::MAX);
            return_used(&mut self.rx, &self.mem, head, written, used);
        }
        Delivery::Delivered
    }

    /// Sends every frame the guest queued, unless the rate limiter says
    /// stop (its timer then brings the worker back); interrupts the guest
    /// if it asked.
    pub fn process_tx(&mut self) {
        let mut used = 0;
        let mut idle_passes = 0;
        let mut taken = 0;
        let _ = self.tx.disable_notification(&self.mem);
        loop {
            let mut progress = false;
            loop {
                if let Some((head, len)) = self.tx_pending {
                    if !self.tx_limiter.consume(len as u64) {
                        self.metrics.tx_rate_limiter_throttled.inc();
                        self.notify_tx(used);
                        return;
                    }
                    self.tx_pending = None;
                    match self.io.write_frame(&self.tx_buf[..len]) {
                        Ok(_) => {
                            self.metrics.tx_packets_count.inc();
                            self.metrics.tx_bytes_count.add(len as u64);
                            self.stats.tx_frames += 1;
                        }
                        Err(e) => {
                            self.metrics.tap_write_fails.inc();
                            // The TAP refused it (full, or a header it
                            // rejects): a lost frame, as on a real wire.
                            tracing::debug!("virtio-net: TAP write failed: {e}");
                            self.stats.tx_dropped += 1;
                        }
                    }
                    return_used(&mut self.tx, &self.mem, head, 0, &mut used);
                }
                if taken == TX_BATCH {
                    // Notifications stay off: the kick brings the worker back.
                    if let Some(kick) = &self.tx_kick {
                        let _ = kick.write(1);
                    }
                    self.notify_tx(used);
                    return;
                }
                let Some(chain) = self.tx.pop_descriptor_chain(&self.mem) else {
                    break;
                };
                taken += 1;
                progress = true;
                let head = chain.head_index();
                let checked = read_tx_chain(chain, &self.mem, &mut self.tx_buf)
                    .and_then(|len| check_tx_header(&self.tx_buf[..len], self.acked).map(|_| len));
                match checked {
                    Ok(len) => self.tx_pending = Some((head, len)),
                    Err(e) => {
                        tracing::debug!("virtio-net: dropping transmit chain {head}: {e}");
                        self.metrics.tx_malformed_frames.inc();
                        self.stats.tx_dropped += 1;
                        return_used(&mut self.tx, &self.mem, head, 0, &mut used);
                    }
                }
            }
            // Notifications back on; chains that came meanwhile are served
            // now. A ring that keeps saying "more" while yielding nothing
            // is broken: stop rather than spin.
            idle_passes = if progress { 0 } else { idle_passes + 1 };
            if idle_passes > 1 {
                break;
            }
            match self.tx.enable_notification(&self.mem) {
                Ok(true) => {
                    let _ = self.tx.disable_notification(&self.mem);
                }
                _ => break,
            }
        }
        self.notify_tx(used);
    }

    fn notify_tx(&mut self, used: usize) {
        self.used(TX_QUEUE, used, false);
    }
}

/// Puts a chain in the used ring with `len` bytes written (0 for transmit
/// chains and for chains refused as malformed).
fn return_used(queue: &mut Queue, mem: &GuestMemoryMmap, head: u16, len: u32, used: &mut usize) {
    match queue.add_used(mem, head, len) {
        Ok(()) => *used += 1,
        Err(e) => tracing::debug!("virtio-net: cannot return buffer {head}: {e}"),
    }
}
